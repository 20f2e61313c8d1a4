"""Monte-Carlo first-error estimates from the policy itself (Math-Shepherd / OmegaPRM style), and the
online judge built on them (``judge.kind=rollout``).

A prefix of k steps is *still right* when completions sampled after it reach the correct answer,
as the task's outcome verifier alone decides; the first error is the step after which they stop
reaching it. No rule judge, no judge model: the price is sampled tokens.

For a wrong response of K steps, prefix 0 (the problem alone) is taken as right and prefix K (the
whole response) is known wrong, so a binary search over prefixes 1..K-1 finds the first step whose
prefix is no longer right in ceil(log2 K) probes of ``n`` completions each. This assumes a wrong
prefix stays wrong when extended (the usual PRM assumption); where that fails the search returns
*a* step at which rightness flips, not necessarily the first. A response the verifier finds
correct is -1 at no sampling cost.

The estimator (:func:`mc_first_errors`) is a function of a :class:`PrefixSampler` and a verifier,
so it is tested with scripted completions; the sampler over a live policy lives with the trainer
(:mod:`sgpo.train.prefix_sampler`), which binds it to the judge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from sgpo.judges.base import ERROR, INVALID, OK, TIMEOUT, JudgeRequest, Verdict
from sgpo.judges.stats import JudgeStats

BUDGET_EXHAUSTED = "sampling budget exhausted"
NOT_BOUND = "no policy bound to the rollout judge (the trainer binds one; see sgpo.train.prefix_sampler)"


class PrefixSampler(Protocol):
    """Completes prefixes of responses with the policy."""

    max_new_tokens: int
    """Longest completion in tokens: the most one completion can cost."""

    def complete(self, items: list[tuple[JudgeRequest, str]], n: int) -> list[tuple[list[str], int]]:
        """For each (request, prefix text): ``n`` completions of the prefix (the text that follows
        it, not including it), and the number of tokens sampled for them."""
        ...


def prefix_text(steps: list[str], k: int, joiner: str = "\n") -> str:
    """The first ``k`` steps as the policy would have written them, ending where step k would start."""
    return joiner.join(steps[:k]) + (joiner if k > 0 else "")


@dataclass
class MCEstimate:
    """The estimate for one response."""

    first_error: int
    """0-based first wrong step, -1 when the verifier finds the response correct (meaningful only if ``status`` is ok)."""
    n_steps: int
    status: str = OK
    """``ok``; ``invalid`` (no steps); ``timeout`` (the token budget ran out before the search ended)."""
    probes: list[tuple[int, int, int]] = field(default_factory=list)
    """(prefix length k, completions that reached the answer, completions sampled), in search order."""
    tokens: int = 0
    """Tokens sampled for this response."""

    def verdict(self) -> Verdict:
        raw = "probes " + " ".join(f"{k}:{s}/{n}" for k, s, n in self.probes) + f"; {self.tokens} tokens"
        if self.status != OK:
            why = BUDGET_EXHAUSTED if self.status == TIMEOUT else "response has no steps"
            return Verdict.failed(self.n_steps, self.status, raw=f"{why}; {raw}")
        return Verdict(self.first_error, self.n_steps, raw=raw)


def mc_first_errors(
    requests: list[JudgeRequest],
    sampler: PrefixSampler,
    verify: Callable[[JudgeRequest, str], bool],
    n: int = 1,
    min_success: int = 1,
    max_tokens: int | None = None,
    joiner: str = "\n",
) -> list[MCEstimate]:
    """Binary-search each response for its first wrong step, all responses' probes batched per round.

    Args:
        requests: M responses (their ``steps``; ``problem``, ``answer`` for the verifier).
        sampler: completes (request, prefix) pairs, ``n`` completions each, in one call per round.
        verify: (request, full text) -> whether that text reaches the right final answer.
        n: completions per probe (N).
        min_success: a prefix is right when at least this many of its ``n`` completions reach the
            answer (1: Math-Shepherd's "hard" estimate).
        max_tokens: most tokens one response may cost; a probe that could push it past (``n`` times
            ``sampler.max_new_tokens``) is not started and the estimate is ``timeout``. None: no cap.
        joiner: how steps are joined back into text (``"\\n"`` for line steps).

    Returns:
        M estimates, in order. ``first_error`` in -1..K-1 where ``status`` is ``ok``.
        Rounds: ceil(log2 max K); probes per response at most ceil(log2 K).
    """
    if n < 1 or not 1 <= min_success <= n:
        raise ValueError(f"need n >= 1 and 1 <= min_success <= n, got n={n}, min_success={min_success}")
    out = [MCEstimate(-1, len(r.steps)) for r in requests]
    lo, hi = [0] * len(requests), [len(r.steps) for r in requests]  # invariant: prefix lo right, prefix hi wrong
    for i, r in enumerate(requests):
        if not r.steps:
            out[i].status = INVALID
        elif verify(r, joiner.join(r.steps)):
            lo[i] = hi[i] = -1  # correct by outcome: no error, nothing to search
    worst = n * sampler.max_new_tokens
    while True:
        active = [i for i, e in enumerate(out) if e.status == OK and hi[i] - lo[i] > 1]
        if max_tokens is not None:
            for i in [i for i in active if out[i].tokens + worst > max_tokens]:
                out[i].status = TIMEOUT
            active = [i for i in active if out[i].status == OK]
        if not active:
            break
        mids = {i: (lo[i] + hi[i]) // 2 for i in active}
        items = [(requests[i], prefix_text(requests[i].steps, mids[i], joiner)) for i in active]
        completed = sampler.complete(items, n)
        if len(completed) != len(items):
            raise ValueError(f"the sampler completed {len(completed)} of {len(items)} prefixes")
        for i, (_, prefix), (texts, tokens) in zip(active, items, completed):
            wins = sum(bool(verify(requests[i], prefix + t)) for t in texts)
            out[i].probes.append((mids[i], wins, len(texts)))
            out[i].tokens += tokens
            if wins >= min_success:
                lo[i] = mids[i]
            else:
                hi[i] = mids[i]
    for i, e in enumerate(out):
        if e.status == OK:
            e.first_error = -1 if hi[i] < 0 else hi[i] - 1  # step hi-1 turned a right prefix into a wrong one
    return out


class RolloutJudge:
    """``judge.kind=rollout``: the Monte-Carlo estimate as an online step judge.

    The current policy samples the completions (a :class:`PrefixSampler` the trainer binds with
    :meth:`bind`); the task's outcome verifier decides which reach the answer. Never raises: an
    unbound judge or a failing sampler gives ``error`` verdicts, a response without steps
    ``invalid``, an exhausted budget ``timeout`` (all counted by the grading step).

    Cost counters (read by :func:`sgpo.judges.stats.collect_stats`): ``sampled_tokens`` and
    ``completions`` since the judge was built.
    """

    def __init__(self, verify: Callable[[JudgeRequest, str], bool], n: int = 1, min_success: int = 1,
                 max_tokens: int | None = None, joiner: str = "\n", seed: int = 0):
        if n < 1 or not 1 <= min_success <= n:
            raise ValueError(f"need n >= 1 and 1 <= min_success <= n, got n={n}, min_success={min_success}")
        self.verify, self.n, self.min_success, self.max_tokens, self.joiner = verify, n, min_success, max_tokens, joiner
        self.seed = seed
        self.sampler: PrefixSampler | None = None
        self.stats = JudgeStats()
        self.sampled_tokens = 0
        self.completions = 0

    def bind(self, sampler: PrefixSampler) -> None:
        """Sample completions with ``sampler`` from now on (the trainer binds the live policy)."""
        self.sampler = sampler

    def state_dict(self) -> dict:
        """What changes later verdicts or counters: the sampler's RNG position and the cost totals."""
        return {"sampler": getattr(self.sampler, "state_dict", dict)(), "sampled_tokens": self.sampled_tokens,
                "completions": self.completions}

    def load_state_dict(self, state: dict) -> None:
        self.sampled_tokens, self.completions = state.get("sampled_tokens", 0), state.get("completions", 0)
        if self.sampler is not None and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state.get("sampler", {}))

    def estimates(self, requests: list[JudgeRequest]) -> list[MCEstimate]:
        """The Monte-Carlo estimates behind :meth:`judge` (raises if no sampler is bound)."""
        if self.sampler is None:
            raise RuntimeError(NOT_BOUND)
        return mc_first_errors(requests, self.sampler, self.verify, self.n, self.min_success, self.max_tokens, self.joiner)

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        start = time.perf_counter()
        try:
            found = self.estimates(requests)
            verdicts = [e.verdict() for e in found]
            calls = max((len(e.probes) for e in found), default=0)
            self.sampled_tokens += sum(e.tokens for e in found)
            self.completions += sum(p[2] for e in found for p in e.probes)
        except Exception as e:  # noqa: BLE001 - a failing sampler fails this batch, never the run
            verdicts = [Verdict.failed(len(r.steps), INVALID if not r.steps else ERROR, raw=f"{type(e).__name__}: {e}")
                        for r in requests]
            calls = 0
        self.stats.calls += calls  # sampling rounds: one batched generate pass each
        self.stats.record(verdicts, time.perf_counter() - start)
        return verdicts


def task_verifier(task) -> Callable[[JudgeRequest, str], bool]:
    """(request, text) -> the task's outcome verifier on text, for the request's problem and answer."""
    from sgpo.tasks.base import Problem

    def verify(request: JudgeRequest, text: str) -> bool:
        problem = Problem("", request.problem, request.reference or "", request.answer or "")
        return task.verify(text, problem) == 1.0

    return verify

"""The grading step: outcomes + responses + a step judge -> verdicts -> RTS -> rewards, advantages
and the ``sgpo/*`` statistics.

The native trainer, ``sgpo rollout``, ``sgpo analyze``, TRL's ``SGPOTrainer`` and verl's reward
function all go through this module, so these rules hold on every path:

* scope: only the responses ``sgpo.core.judge_mask`` selects are asked about (by default the
  wrong responses of all-negative groups);
* a response with no steps is never sent to the judge: it gets an ``invalid`` verdict
  (:data:`NO_STEPS`), counted as a failure;
* a judge that raises does not stop the run: the whole batch becomes ``error`` verdicts;
* a verdict is usable only if it is ``ok`` and its first-error index names one of the response's
  steps (or is -1); any other verdict is a counted failure, and the response's reward is unknown:
  it leaves its group's statistics and gets advantage 0 (DESIGN §2.8, ``sgpo.core.known_rewards``).

It comes in two halves so that a trainer spread over processes can judge only its own rows and
share the numbers (TRL):

    judged = judge_requests(judge, requests, settings)      # talks to the judge
    shaped = shape(outcomes, rts, ok, settings)              # pure: sgpo.core.METHODS

and :func:`grade` does both for one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from sgpo.core import (
    JUDGED_METHODS,
    METHODS,
    MethodOutput,
    ShapingParams,
    classify_groups,
    judge_mask,
    rts_from_steps,
    rts_from_tokens,
)
from sgpo.core.methods import GRADING_METHODS
from sgpo.judges.base import ERROR, INVALID, JudgeRequest, Verdict
from sgpo.steps import split_steps
from sgpo.tasks.base import Problem

NO_STEPS = "response has no steps"


@dataclass(frozen=True)
class GradingSettings:
    """What the grading step needs to know besides the data: the method and how to read steps."""

    method: str = "sgpo"
    """``grpo``, ``sgpo``, ``dapo``, ``ngrpo`` or ``random`` (see ``sgpo.core.METHODS``)."""
    params: ShapingParams = field(default_factory=ShapingParams)
    """Scope, RTS -> reward mapping and advantage scaling."""
    step_mode: str = "auto"
    """How responses are split into steps (``sgpo.steps.split_steps``)."""
    max_steps: int | None = None
    """Merge a response's steps down to at most this many before judging (None: no limit)."""
    rts_unit: str = "steps"
    """RTS as the share of ``steps`` or of ``tokens`` before the first error (tokens need ``count_tokens``)."""

    def __post_init__(self):
        METHODS.get(self.method)  # a typo fails here, with the list of methods


@dataclass
class Judged:
    """Verdicts about M responses, in the order they were asked."""

    verdicts: list[Verdict]
    rts: torch.Tensor
    """[M] float32 RTS (0 where the verdict is not usable)."""
    ok: torch.Tensor
    """[M] bool, the verdict is usable."""
    calls: int
    """Requests actually sent to the judge (stored verdicts and step-less responses are not)."""


@dataclass
class Graded:
    """One batch of N groups of G responses after grading."""

    rewards: torch.Tensor
    """[N, G] rewards after shaping."""
    advantages: torch.Tensor
    """[N, G] advantages."""
    keep: torch.Tensor
    """[N] bool, groups that enter the loss."""
    rts: torch.Tensor
    """[N, G] RTS of the graded responses (0 elsewhere)."""
    verdict_ok: torch.Tensor
    """[N, G] bool, the response was graded (a usable verdict; for ``random``, a response with steps)."""
    judged: torch.Tensor
    """[N, G] bool, the response was in the judge's scope (False everywhere for judge-free methods)."""
    verdicts: dict[int, Verdict]
    """Flat index (prompt-major) -> verdict, for the responses in scope."""
    calls: int
    """Requests sent to the judge for this batch."""


def in_scope(outcomes: torch.Tensor, scope: str) -> list[int]:
    """Flat indices (prompt-major) of the responses of ``outcomes`` [N, G] that ``scope`` selects."""
    return judge_mask(outcomes, scope).reshape(-1).nonzero().squeeze(1).tolist()


def scope_index(outcomes: torch.Tensor, settings: GradingSettings) -> list[int]:
    """The responses ``settings.method`` grades: those in scope, or none for methods that grade nothing."""
    return in_scope(outcomes, settings.params.scope) if settings.method in GRADING_METHODS else []


def request(problem: Problem, text: str, settings: GradingSettings) -> JudgeRequest:
    """The judge request for one response to ``problem``."""
    steps = split_steps(text, settings.step_mode, settings.max_steps)
    return JudgeRequest(problem.question, steps, problem.reference, problem.answer)


def requests_for(
    problems: list[Problem], texts: list[str], index: list[int], group_size: int, settings: GradingSettings
) -> list[JudgeRequest]:
    """Judge requests for the responses at ``index`` (flat, prompt-major: response i is of problem i // G)."""
    return [request(problems[i // group_size], texts[i], settings) for i in index]


def ask_judge(judge, requests: list[JudgeRequest], log=print) -> list[Verdict]:
    """One verdict per request, in order; never raises for a bad response or a failing judge."""
    out: list[Verdict | None] = [None if r.steps else Verdict.failed(0, INVALID, raw=NO_STEPS) for r in requests]
    todo = [i for i, r in enumerate(requests) if r.steps]
    if not todo:
        return out  # type: ignore[return-value]
    try:
        results = judge.judge([requests[i] for i in todo])
        if len(results) != len(todo):
            raise ValueError(f"the judge returned {len(results)} verdicts for {len(todo)} requests")
    except Exception as e:  # a judge must not kill the run; these responses stay plain GRPO
        log(f"judge raised {type(e).__name__}: {e}; treating the batch as failed verdicts")
        results = [Verdict.failed(len(requests[i].steps), ERROR, raw=repr(e)) for i in todo]
    for i, v in zip(todo, results):
        out[i] = v
    return out  # type: ignore[return-value]


def usable(v: Verdict | None) -> bool:
    """A verdict SGPO can grade with: ``ok``, about at least one step, and naming one of them (or -1)."""
    return v is not None and v.ok and v.n_steps > 0 and -1 <= v.first_error < v.n_steps


def rts_of(verdicts: list[Verdict], requests: list[JudgeRequest], settings: GradingSettings,
           count_tokens: Callable[[str], int] | None = None) -> torch.Tensor:
    """[M] RTS of usable verdicts about ``requests`` (share of steps, or of tokens, before the first error)."""
    if not verdicts:
        return torch.zeros(0)
    first = torch.tensor([v.first_error for v in verdicts])
    if settings.rts_unit == "tokens":
        if count_tokens is None:
            raise ValueError("rts_unit='tokens' needs count_tokens, a function from step text to token count")
        width = max(len(r.steps) for r in requests)
        counts = torch.zeros(len(requests), width, dtype=torch.long)
        for row, r in enumerate(requests):
            for col, text in enumerate(r.steps):
                counts[row, col] = max(1, count_tokens(text))  # an empty step still is a step
        return rts_from_tokens(first, counts)
    return rts_from_steps(first, torch.tensor([v.n_steps for v in verdicts]))


def judge_requests(
    judge,
    requests: list[JudgeRequest],
    settings: GradingSettings,
    stored: list[Verdict | None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    log=print,
) -> Judged:
    """Verdicts, RTS and usability for ``requests``; a stored verdict (offline) is used as it is."""
    verdicts: list[Verdict | None] = list(stored) if stored is not None else [None] * len(requests)
    todo = [j for j, v in enumerate(verdicts) if v is None]
    calls = 0
    if todo:
        if judge is None:
            raise ValueError(f"{len(todo)} responses need a verdict but no judge was given")
        asked = [requests[j] for j in todo]
        for j, v in zip(todo, ask_judge(judge, asked, log)):
            verdicts[j] = v
        calls = sum(1 for r in asked if r.steps)
    ok = torch.tensor([usable(v) for v in verdicts], dtype=torch.bool)
    rts = torch.zeros(len(requests))
    good = ok.nonzero().squeeze(1).tolist()
    rts[good] = rts_of([verdicts[j] for j in good], [requests[j] for j in good], settings, count_tokens)
    return Judged(verdicts, rts, ok, calls)  # type: ignore[arg-type]


def shape(
    outcomes: torch.Tensor,
    rts: torch.Tensor,
    verdict_ok: torch.Tensor,
    settings: GradingSettings,
    generator: torch.Generator | None = None,
) -> MethodOutput:
    """Rewards, advantages and kept groups from ``sgpo.core.METHODS[settings.method]``. All [N, G] (keep [N])."""
    fn = METHODS.get(settings.method)
    return fn(outcomes, rts=rts, verdict_ok=verdict_ok, params=settings.params, generator=generator)


def grade(
    problems: list[Problem],
    texts: list[str],
    outcomes: torch.Tensor,
    settings: GradingSettings,
    judge=None,
    stored: list[Verdict | None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    generator: torch.Generator | None = None,
    log=print,
) -> Graded:
    """Grade N groups of G responses in one process.

    Args:
        problems: [N] the groups' problems; texts: [N * G] responses, prompt-major.
        outcomes: [N, G] verifier outcomes in {0, 1}.
        settings: method, shaping parameters and step reading.
        judge: a ``StepJudge`` (needed for ``sgpo`` unless every verdict in scope is stored).
        stored: [N * G] verdicts already known (offline rollouts), None where not judged.
        count_tokens: step text -> token count, for ``rts_unit='tokens'``.
        generator: seeds the ``random`` control's RTS.
    """
    N, G = outcomes.shape
    rts = torch.zeros(N * G)
    ok = torch.zeros(N * G, dtype=torch.bool)
    verdicts: dict[int, Verdict] = {}
    calls = 0
    index = scope_index(outcomes, settings)
    if index:
        requests = requests_for(problems, texts, index, G, settings)
        if settings.method in JUDGED_METHODS:
            judged = judge_requests(judge, requests, settings, [stored[i] for i in index] if stored else None,
                                    count_tokens, log)
            rts[index], ok[index], calls = judged.rts, judged.ok, judged.calls
            verdicts = dict(zip(index, judged.verdicts))
        else:  # the random control grades exactly the responses SGPO could: those with steps
            ok[index] = torch.tensor([bool(r.steps) for r in requests])
    rts, ok = rts.view(N, G), ok.view(N, G)
    out = shape(outcomes, rts, ok, settings, generator)
    judged_mask = judge_mask(outcomes, settings.params.scope) if settings.method in JUDGED_METHODS else torch.zeros_like(ok)
    return Graded(out.rewards, out.advantages, out.keep, rts, ok, judged_mask, verdicts, calls)


def grading_stats(outcomes: torch.Tensor, graded: Graded | MethodOutput, judged: torch.Tensor | None = None,
                  verdict_ok: torch.Tensor | None = None, rts: torch.Tensor | None = None) -> dict[str, float]:
    """The algorithm's metrics for one batch (DESIGN §4 names): accuracy, reward, group kinds, ``sgpo/*``.

    ``graded`` is a :class:`Graded`, or a bare ``MethodOutput`` with ``judged``, ``verdict_ok`` and
    ``rts`` ([N, G] each) given beside it (a process that did not judge every row itself).
    """
    if isinstance(graded, Graded):
        judged, verdict_ok, rts = graded.judged, graded.verdict_ok, graded.rts
    kinds = classify_groups(outcomes)
    good = judged & verdict_ok
    recovered = kinds.all_negative & (graded.advantages.abs() > 0).any(dim=1)
    return {
        "accuracy/train": outcomes.float().mean().item(),
        "reward/mean": graded.rewards.mean().item(),
        "groups/all_negative_frac": kinds.all_negative.float().mean().item(),
        "groups/all_positive_frac": kinds.all_positive.float().mean().item(),
        "groups/mixed_frac": kinds.mixed.float().mean().item(),
        "sgpo/judged_responses": int(judged.sum()),
        "sgpo/judge_failures": int((judged & ~verdict_ok).sum()),
        "sgpo/recovered_groups_frac": recovered.float().mean().item(),
        "sgpo/rts_mean": rts[good].mean().item() if good.any() else 0.0,
    }


__all__ = [
    "GradingSettings", "Graded", "Judged", "NO_STEPS", "ask_judge", "grade", "grading_stats", "in_scope",
    "judge_requests", "request", "requests_for", "rts_of", "scope_index", "shape", "usable",
]

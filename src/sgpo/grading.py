"""The grading step: outcomes + responses + a step judge -> verdicts -> RTS -> rewards, advantages
and the ``sgpo/*`` statistics.

The native trainer, ``sgpo rollout``, ``sgpo analyze``, TRL's ``SGPOTrainer`` and verl's reward
function all go through this module, so these rules hold on every path:

* scope: only the responses ``sgpo.core.judge_mask`` selects are asked about (by default the
  wrong responses of all-negative groups), and only for a method that grades (``Method.grades``);
* a response with no steps is never sent to the judge: it gets an ``invalid`` verdict
  (:data:`NO_STEPS`), counted as a failure; a judge-free grading method (the ``random`` control)
  grades exactly the responses a judge could: those with steps;
* a judge that raises does not stop the run: the whole batch becomes ``error`` verdicts;
* a verdict is usable only if it is ``ok`` and its first-error index names one of the response's
  steps (or is -1); any other verdict is a counted failure, and the response's reward is unknown:
  it leaves its group's statistics and gets advantage 0 (the failure rule of docs/metrics.md, ``sgpo.core.known_rewards``).

How a response is read (step mode, step limit, RTS unit: :class:`StepReading`) is apart from the
method and its shaping (:class:`GradingSettings` = method + ``ShapingParams`` + reading).

:func:`grade` grades any subset of a batch's rows, so a trainer spread over processes judges only
its own rows and shares the numbers (TRL)::

    mine = grade(problems, texts, outcomes, settings, judge, rows=my_rows)   # reads, judges
    # ... gather mine.rts, mine.verdict_ok over processes ...
    shaped = shape(outcomes, rts, ok, settings, generator)                    # pure: sgpo.core.METHODS

and, given every row (the default), shapes the batch as well. ``sgpo rollout`` only judges the
responses in scope (no method): :func:`judge_rows`, the routine ``grade`` judges with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import torch

from sgpo.core import (
    METHODS,
    Method,
    MethodOutput,
    Shaped,
    ShapingParams,
    classify_groups,
    judge_mask,
    rts_from_steps,
    rts_from_tokens,
)
from sgpo.judges.base import ERROR, INVALID, JudgeRequest, Verdict
from sgpo.tasks.base import Problem
from sgpo.tasks.steps import split_steps

NO_STEPS = "response has no steps"
#: What an RTS is the share of: ``steps`` or ``tokens`` before the first error.
RTS_UNITS = ("steps", "tokens")


@dataclass(frozen=True)
class StepReading:
    """How a response is read into steps and its verdict into an RTS; nothing about the method."""

    step_mode: str = "auto"
    """How responses are split into steps (``sgpo.tasks.steps.split_steps``)."""
    max_steps: int | None = None
    """Merge a response's steps down to at most this many before judging (None: no limit)."""
    rts_unit: str = "steps"
    """RTS as the share of ``steps`` or of ``tokens`` before the first error (tokens need ``count_tokens``)."""

    def __post_init__(self):
        if self.rts_unit not in RTS_UNITS:
            raise ValueError(f"rts_unit={self.rts_unit!r}; choose one of: {', '.join(RTS_UNITS)}")


@dataclass(frozen=True)
class GradingSettings:
    """What the grading step needs to know besides the data: the method, its shaping, how to read steps."""

    method: str = "sgpo"
    """A name in ``sgpo.core.METHODS`` (``grpo``, ``sgpo``, ``dapo``, ``ngrpo``, ``random``, or one registered)."""
    params: ShapingParams = field(default_factory=ShapingParams)
    """Scope, RTS -> reward mapping and advantage scaling."""
    step_mode: str = "auto"
    """How responses are split into steps (``sgpo.tasks.steps.split_steps``)."""
    max_steps: int | None = None
    """Merge a response's steps down to at most this many before judging (None: no limit)."""
    rts_unit: str = "steps"
    """RTS as the share of ``steps`` or of ``tokens`` before the first error (tokens need ``count_tokens``)."""

    def __post_init__(self):
        METHODS.get(self.method)  # a typo fails here, with the list of methods
        StepReading(self.step_mode, self.max_steps, self.rts_unit)  # and a bad RTS unit

    @property
    def reading(self) -> StepReading:
        return StepReading(self.step_mode, self.max_steps, self.rts_unit)

    @property
    def spec(self) -> Method:
        """The registered method: what it needs (a judge?) and does (grades? over-samples?)."""
        return METHODS.get(self.method)


Reading = StepReading | GradingSettings
"""Anything that says how to read steps (a ``GradingSettings`` reads as its ``.reading``)."""


def _reading(x: Reading) -> StepReading:
    return x.reading if isinstance(x, GradingSettings) else x


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
    """N groups of G responses after grading (all of them, or the ``rows`` one call graded)."""

    rewards: torch.Tensor | None
    """[N, G] rewards after shaping (None for a call given only some rows: shape after gathering)."""
    advantages: torch.Tensor | None
    """[N, G] advantages (None as ``rewards``)."""
    keep: torch.Tensor | None
    """[N] bool, groups that enter the loss (None as ``rewards``)."""
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
    rows: list[int] = field(default_factory=list)
    """Flat indices (prompt-major) this call graded: the method's scope, among the rows it was given."""
    known: torch.Tensor | None = None
    """[N, G] bool, the rewards that are known (None: all, or not shaped): a failed verdict's is not."""


def in_scope(outcomes: torch.Tensor, scope: str) -> list[int]:
    """Flat indices (prompt-major) of the responses of ``outcomes`` [N, G] that ``scope`` selects."""
    return judge_mask(outcomes, scope).reshape(-1).nonzero().squeeze(1).tolist()


def scope_index(outcomes: torch.Tensor, settings: GradingSettings) -> list[int]:
    """The responses ``settings.method`` grades: those in scope, or none for methods that grade nothing."""
    return in_scope(outcomes, settings.params.scope) if settings.spec.grades else []


def judged_mask(outcomes: torch.Tensor, settings: GradingSettings) -> torch.Tensor:
    """[N, G] bool, the responses a judge is asked about under ``settings`` (none for judge-free methods)."""
    if settings.spec.judges:
        return judge_mask(outcomes, settings.params.scope)
    return torch.zeros_like(outcomes, dtype=torch.bool)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step's random draws (the ``random`` control's RTS), the same on every path."""
    return torch.Generator().manual_seed(seed * 7_919 + step)


def token_counter(tokenizer) -> Callable[[str], int]:
    """Step text -> its number of tokens under ``tokenizer`` (no special tokens), for ``rts_unit='tokens'``."""
    return lambda text: len(tokenizer(text=text, add_special_tokens=False)["input_ids"])


def request(problem: Problem, text: str, reading: Reading) -> JudgeRequest:
    """The judge request for one response to ``problem``."""
    r = _reading(reading)
    return JudgeRequest(problem.question, split_steps(text, r.step_mode, r.max_steps), problem.reference, problem.answer)


def requests_for(problems: Sequence[Problem] | Mapping[int, Problem], texts: Sequence[str] | Mapping[int, str],
                 index: Iterable[int], group_size: int, reading: Reading) -> list[JudgeRequest]:
    """Judge requests for the responses at ``index`` (flat, prompt-major: response i is of problem i // G).
    ``problems`` and ``texts`` need to hold only the groups and rows at ``index`` (a dict will do)."""
    return [request(problems[i // group_size], texts[i], reading) for i in index]


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


def rts_of(verdicts: list[Verdict], requests: list[JudgeRequest], reading: Reading,
           count_tokens: Callable[[str], int] | None = None) -> torch.Tensor:
    """[M] RTS of usable verdicts about ``requests`` (share of steps, or of tokens, before the first error)."""
    if not verdicts:
        return torch.zeros(0)
    first = torch.tensor([v.first_error for v in verdicts])
    if _reading(reading).rts_unit == "tokens":
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
    reading: Reading,
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
    rts[good] = rts_of([verdicts[j] for j in good], [requests[j] for j in good], reading, count_tokens)
    return Judged(verdicts, rts, ok, calls)  # type: ignore[arg-type]


def judge_rows(
    problems: Sequence[Problem] | Mapping[int, Problem],
    texts: Sequence[str] | Mapping[int, str],
    rows: list[int],
    group_size: int,
    reading: Reading,
    judge=None,
    stored: Sequence[Verdict | None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    log=print,
) -> Judged:
    """Read the responses at ``rows`` (flat, prompt-major) into steps and judge them, in that order.

    ``stored``: [N * G] verdicts already known by flat row (offline), None where not judged.
    """
    requests = requests_for(problems, texts, rows, group_size, reading)
    return judge_requests(judge, requests, reading, [stored[i] for i in rows] if stored else None, count_tokens, log)


def shape(
    outcomes: torch.Tensor,
    rts: torch.Tensor,
    verdict_ok: torch.Tensor,
    settings: GradingSettings,
    generator: torch.Generator | None = None,
) -> MethodOutput:
    """Rewards, advantages and kept groups from ``sgpo.core.METHODS[settings.method]``. All [N, G] (keep [N])."""
    return settings.spec(outcomes, rts=rts, verdict_ok=verdict_ok, params=settings.params, generator=generator)


def grade(
    problems: Sequence[Problem] | Mapping[int, Problem],
    texts: Sequence[str] | Mapping[int, str],
    outcomes: torch.Tensor,
    settings: GradingSettings,
    judge=None,
    stored: list[Verdict | None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    generator: torch.Generator | None = None,
    log=print,
    rows: Iterable[int] | None = None,
) -> Graded:
    """Grade N groups of G responses, or only the ``rows`` of them this process holds.

    Args:
        problems: [N] the groups' problems; texts: [N * G] responses, prompt-major (with ``rows``,
            a dict holding the groups and rows given will do).
        outcomes: [N, G] verifier outcomes in {0, 1}, of the whole batch (scope depends on the group).
        settings: method, shaping parameters and step reading.
        judge: a ``StepJudge`` (needed for a judging method unless every verdict in scope is stored).
        stored: [N * G] verdicts already known (offline rollouts), None where not judged.
        count_tokens: step text -> token count, for ``rts_unit='tokens'`` (:func:`token_counter`).
        generator: seeds the ``random`` control's RTS (:func:`step_generator`).
        rows: flat indices this call may grade (default: all). Given, the call only reads and
            judges (``rewards``, ``advantages``, ``keep`` are None): shape after gathering every
            process's ``rts`` and ``verdict_ok`` at its rows.
    """
    N, G = outcomes.shape
    rts = torch.zeros(N * G)
    ok = torch.zeros(N * G, dtype=torch.bool)
    verdicts: dict[int, Verdict] = {}
    calls = 0
    given = torch.ones(N * G, dtype=torch.bool)
    if rows is not None:
        given = torch.zeros(N * G, dtype=torch.bool)
        given[list(rows)] = True
    index = [i for i in scope_index(outcomes, settings) if given[i]]
    if index and settings.spec.judges:
        judged = judge_rows(problems, texts, index, G, settings, judge, stored, count_tokens, log)
        rts[index], ok[index], calls = judged.rts, judged.ok, judged.calls
        verdicts = dict(zip(index, judged.verdicts))
    elif index:  # a judge-free grading method grades exactly the responses a judge could: those with steps
        ok[index] = torch.tensor([bool(r.steps) for r in requests_for(problems, texts, index, G, settings)])
    rts, ok = rts.view(N, G), ok.view(N, G)
    judged_here = judged_mask(outcomes, settings) & given.view(N, G)
    if rows is not None:
        return Graded(None, None, None, rts, ok, judged_here, verdicts, calls, index)
    out = shape(outcomes, rts, ok, settings, generator)
    return Graded(out.rewards, out.advantages, out.keep, rts, ok, judged_here, verdicts, calls, index, out.known)


def grading_stats(outcomes: torch.Tensor, graded: Graded | MethodOutput | Shaped, judged: torch.Tensor | None = None,
                  verdict_ok: torch.Tensor | None = None, rts: torch.Tensor | None = None) -> dict[str, float]:
    """The algorithm's metrics for one batch (the names of docs/metrics.md): accuracy, reward, group kinds, ``sgpo/*``.

    ``graded`` is a :class:`Graded`, or a bare ``MethodOutput`` (or ``sgpo.core.Shaped``) with ``judged`` and ``verdict_ok``
    ([N, G] each) given beside it (a process that did not judge every row itself), and ``rts`` if
    it has the RTS values: without them (verl's estimator sees graded rewards only) there is no
    ``sgpo/rts_mean``.
    """
    if isinstance(graded, Graded):
        judged, verdict_ok, rts = graded.judged, graded.verdict_ok, graded.rts
    kinds = classify_groups(outcomes)
    good = judged & verdict_ok
    recovered = kinds.all_negative & (graded.advantages.abs() > 0).any(dim=1)
    stats = {
        "accuracy/train": outcomes.float().mean().item(),
        "reward/mean": graded.rewards.mean().item(),
        "groups/all_negative_frac": kinds.all_negative.float().mean().item(),
        "groups/all_positive_frac": kinds.all_positive.float().mean().item(),
        "groups/mixed_frac": kinds.mixed.float().mean().item(),
        "sgpo/judged_responses": int(judged.sum()),
        "sgpo/judge_failures": int((judged & ~verdict_ok).sum()),
        "sgpo/recovered_groups_frac": recovered.float().mean().item(),
    }
    if rts is not None:
        stats["sgpo/rts_mean"] = rts[good].mean().item() if good.any() else 0.0
    return stats


#: The :func:`grading_stats` that are shares of groups and counts; the others are means over responses,
#: except ``sgpo/rts_mean``, a mean over the usable verdicts (judged responses less failures).
_PER_GROUP = ("groups/all_negative_frac", "groups/all_positive_frac", "groups/mixed_frac", "sgpo/recovered_groups_frac")
_COUNTS = ("sgpo/judged_responses", "sgpo/judge_failures")


def merge_grading_stats(parts: Sequence[tuple[dict[str, float], int, int]]) -> dict[str, float]:
    """The :func:`grading_stats` of a batch from those of its parts, each ``(stats, groups, responses)``
    (e.g. groups of unequal sizes, graded size by size). Counts add up; means are weighted by what they
    are means over (responses, groups, usable verdicts)."""
    parts = [p for p in parts if p[1] > 0]
    if not parts:  # an empty batch: every statistic there is without an RTS, at zero
        return {key: 0 if key in _COUNTS else 0.0 for key in ("accuracy/train", "reward/mean", *_PER_GROUP, *_COUNTS)}
    out: dict[str, float] = {}
    for key in parts[0][0]:
        if key in _COUNTS:
            out[key] = sum(stats[key] for stats, _, _ in parts)
            continue
        if key in _PER_GROUP:
            weights = [groups for _, groups, _ in parts]
        elif key == "sgpo/rts_mean":
            weights = [stats["sgpo/judged_responses"] - stats["sgpo/judge_failures"] for stats, _, _ in parts]
        else:
            weights = [responses for _, _, responses in parts]
        total = sum(weights)
        out[key] = sum(stats[key] * w for (stats, _, _), w in zip(parts, weights)) / total if total else 0.0
    return out


__all__ = [
    "GradingSettings", "Graded", "Judged", "NO_STEPS", "RTS_UNITS", "StepReading", "ask_judge", "grade", "grading_stats",
    "in_scope", "judge_requests", "judge_rows", "judged_mask", "merge_grading_stats", "request", "requests_for", "rts_of", "scope_index", "shape",
    "step_generator", "token_counter", "usable",
]

"""Asking the step judge about sampled responses, shared by the trainer and ``sgpo rollout``.

Two rules live here so that online training, offline training and rollout files agree:

* a response with no steps (empty text) is never sent to the judge: there is no step to find an
  error in, so it gets a failed (``invalid``) verdict and stays plain GRPO, counted as a failure;
* a judge that raises does not stop the run: the whole batch becomes ``error`` verdicts.
"""

from __future__ import annotations

from sgpo.core import judge_mask
from sgpo.judges.base import ERROR, INVALID, JudgeRequest, Verdict
from sgpo.steps import split_steps
from sgpo.tasks.base import Problem

NO_STEPS = "response has no steps"


def in_scope(outcomes, scope: str) -> list[int]:
    """Flat indices (prompt-major) of the responses of ``outcomes`` [N, G] that ``scope`` sends to the judge."""
    return judge_mask(outcomes, scope).reshape(-1).nonzero().squeeze(1).tolist()


def requests_for(
    problems: list[Problem], texts: list[str], index: list[int], group_size: int, step_mode: str, max_steps: int | None
) -> list[JudgeRequest]:
    """Judge requests for the responses at ``index`` (flat, prompt-major: response i is of problem i // G)."""
    out = []
    for i in index:
        p = problems[i // group_size]
        out.append(JudgeRequest(p.question, split_steps(texts[i], step_mode, max_steps), p.reference, p.answer))
    return out


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
    """A verdict SGPO can grade with: ``ok`` and about at least one step."""
    return v is not None and v.ok and v.n_steps > 0


__all__ = ["NO_STEPS", "ask_judge", "in_scope", "requests_for", "usable"]

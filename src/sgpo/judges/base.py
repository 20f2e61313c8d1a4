"""The step-judge protocol: given a problem and a response's steps, where is the first error?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

OK, INVALID, ERROR, TIMEOUT = "ok", "invalid", "error", "timeout"
STATUSES = (OK, INVALID, ERROR, TIMEOUT)


@dataclass(frozen=True)
class JudgeRequest:
    """One response to judge."""

    problem: str
    steps: list[str]
    reference: str | None = None
    """A reference solution the judge may compare against (it never has to solve the problem)."""
    answer: str | None = None
    """The reference final answer, when known."""

    def key(self) -> tuple:
        """What identifies a request for caching."""
        return (self.problem, tuple(self.steps), self.reference)


@dataclass(frozen=True)
class Verdict:
    """The judge's answer for one request."""

    first_error: int
    """0-based index of the first incorrect step; -1 when the judge found none."""
    n_steps: int
    status: str = OK
    """``ok``, ``invalid`` (unparseable or out-of-range output), ``error`` or ``timeout``."""
    raw: str | None = None
    """What the judge said, kept for debugging."""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def failed(cls, n_steps: int, status: str, raw: str | None = None) -> "Verdict":
        """A verdict that carries no information; SGPO leaves such a response at its outcome."""
        if status == OK:
            raise ValueError("a failed verdict needs a status other than 'ok'")
        return cls(-1, n_steps, status, raw)


@runtime_checkable
class StepJudge(Protocol):
    """Anything that turns a batch of requests into one verdict per request, in order.

    Implementations must not raise for a bad response or a failing backend: they return a
    failed verdict instead, so one bad judge call never stops a training run.
    """

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]: ...


def wrapper_chain(judge: object | None) -> list[object]:
    """``judge`` and every judge it wraps, outermost first: wrappers (noise, cache, a lazily loaded
    model) point at the judge they wrap through ``.inner``. Statistics, checkpoint state and the
    Monte-Carlo judge's policy binding all walk this chain."""
    nodes, seen = [], set()
    while judge is not None and id(judge) not in seen:
        seen.add(id(judge))
        nodes.append(judge)
        judge = getattr(judge, "inner", None)
    return nodes

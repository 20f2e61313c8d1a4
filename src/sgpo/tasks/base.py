"""What the trainer needs from a task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sgpo.judges.base import StepJudge

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    reference: str
    """A step-by-step reference solution (judges may see it)."""
    answer: str
    """The reference final answer."""


class Task(Protocol):
    name: str
    step_mode: str
    """How responses are split into steps (see :func:`sgpo.steps.split_steps`)."""

    def problems(self, split: str, n: int) -> list[Problem]:
        """``n`` distinct problems of ``split``; no problem is in two splits."""
        ...

    def verify(self, response: str, problem: Problem) -> float:
        """Outcome reward: 1.0 if the response's final answer is right, else 0.0."""
        ...

    def rule_judge(self) -> "StepJudge | None":
        """An exact step judge, if the task has one."""
        ...

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


@dataclass(frozen=True)
class Check:
    """The verifier's full verdict on one response (``Task.check``)."""

    correct: bool
    status: str
    """Why: ``correct``, ``wrong``, ``no_answer``, ``unparsable``, ``timeout`` or ``error``
    (``sgpo.tasks.verify.STATUSES``); a check that fails in any way is not ``correct``, never an exception."""
    answer: str | None = None
    """The extracted answer (None when no method found one)."""
    method: str | None = None
    """The extraction method that found it."""


class Task(Protocol):
    """What every caller (the native trainer, its warm-up and offline rollouts, verl's reward
    function, ``sgpo data``, the judges) may use; nothing else is probed for. Build one with
    :func:`sgpo.tasks.make_task`."""

    name: str
    """``arith`` or ``math``: also the ``data_source`` suffix of verl datasets (``sgpo/<name>``)."""
    step_mode: str
    """How responses are split into steps (see :func:`sgpo.tasks.steps.split_steps`)."""
    system_prompt: str | None
    """The system message the task's prompts use unless the config sets one (None: no system message)."""

    def problems(self, split: str, n: int) -> list[Problem]:
        """``n`` distinct problems of ``split``; no problem is in two splits."""
        ...

    def check(self, response: str, problem: Problem) -> Check:
        """The response's outcome and why; never raises."""
        ...

    def verify(self, response: str, problem: Problem) -> float:
        """Outcome reward: 1.0 if the response's final answer is right, else 0.0 (``check(...).correct``)."""
        ...

    def gold_answer(self, ground_truth: str) -> str:
        """A data set's ground-truth field as the answer :meth:`check` compares with (verl's ``ground_truth``)."""
        ...

    def verify_stats(self) -> dict[str, int]:
        """How many checks so far came to each :attr:`Check.status` (empty if the task does not count)."""
        ...

    def rule_judge(self) -> "StepJudge | None":
        """The task's exact step judge; a task without one raises ``ConfigError`` saying which judges to
        use (or returns None, and ``judge.kind=rule`` is refused naming the task)."""
        ...

    def close(self) -> None:
        """Release what checking holds (math: its helper process); the task still works after it."""
        ...

"""Tasks: prompts with reference solutions, an outcome verifier and, where one exists, a rule judge.

:func:`make_task` is the one way to build a task by name: the native trainer (from its config),
verl's reward function (from ``reward_kwargs``) and ``sgpo data`` all call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sgpo.tasks.base import Check, Problem, Task

if TYPE_CHECKING:
    from sgpo.tasks.arith import ArithSpec
    from sgpo.tasks.problem_files import Fields

#: The task names :func:`make_task` knows.
TASKS = ("arith", "math")


def make_task(
    name: str,
    *,
    arith: "ArithSpec | None" = None,
    seed: int = 0,
    train_files: Sequence[str] = (),
    eval_files: Sequence[str] = (),
    fields: "Fields | None" = None,
    answer_extraction: Sequence[str] = ("boxed", "answer_line"),
    verify_timeout_s: float = 5.0,
) -> Task:
    """The task ``name`` names, with the options that task reads (the others are ignored).

    Args:
        name: ``arith`` (the seeded arithmetic generator, with an exact rule judge) or ``math``
            (problems from files, or the built-in word problems; checked with math-verify).
        arith: ``arith``: the generator's spec (default: ``ArithSpec()``).
        seed: ``arith``: the generator's seed.
        train_files, eval_files: ``math``: problem files (JSONL/JSON/Parquet); none: the built-in set.
        fields: ``math``: the field names of those files (default: tried in order, see ``Fields``).
        answer_extraction: ``math``: how the final answer is found in a response, in order.
        verify_timeout_s: ``math``: the longest one comparison may take before it counts as wrong.
    """
    # Imported here: the task modules pull in judges and math-verify's helper, and `import sgpo.tasks` stays light.
    if name == "arith":
        from sgpo.tasks.arith import ArithSpec, ArithTask

        return ArithTask(arith or ArithSpec(), seed=seed)
    if name == "math":
        from sgpo.tasks.math_task import MathTask
        from sgpo.tasks.problem_files import Fields

        return MathTask(list(train_files), list(eval_files), fields or Fields(), tuple(answer_extraction), verify_timeout_s)
    raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")


__all__ = ["TASKS", "Check", "Problem", "Task", "make_task"]

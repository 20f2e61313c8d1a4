"""The Task protocol is all callers use: every task implements all of it, and make_task builds each."""

from __future__ import annotations

import inspect

import pytest

from sgpo.tasks import TASKS, Task, make_task
from sgpo.tasks.arith import ArithSpec

MEMBERS = sorted(n for n in dir(Task) if not n.startswith("_")) + sorted(Task.__annotations__)


@pytest.mark.parametrize("name", TASKS)
def test_every_task_implements_the_whole_protocol(name):
    task = make_task(name)
    try:
        missing = [m for m in MEMBERS if not hasattr(task, m)]
        assert not missing, f"{name} lacks {missing}"
        for m in sorted(n for n in dir(Task) if not n.startswith("_")):
            want = list(inspect.signature(getattr(Task, m)).parameters)[1:]
            assert list(inspect.signature(getattr(task, m)).parameters)[: len(want)] == want, m
        assert task.name == name
        problem = task.problems("train", 1)[0]
        right = task.check(f"...\n\\boxed{{{problem.answer}}}\nAnswer: {problem.answer}", problem)
        assert right.correct and right.status == "correct"
        wrong = task.check("no answer here at all", problem)
        assert not wrong.correct and wrong.status == "no_answer"
        assert task.verify("no answer here at all", problem) == 0.0
        assert isinstance(task.verify_stats(), dict)
    finally:
        task.close()
        task.close()  # closing twice is harmless


def test_gold_answers_are_read_the_way_each_task_checks():
    assert make_task("arith").gold_answer(" 42 \n") == "42"
    math = make_task("math")
    try:
        assert math.gold_answer("Natalia sold 48 clips.\n#### 72") == "72"
    finally:
        math.close()


def test_make_task_passes_the_arith_options_and_refuses_an_unknown_name():
    spec = ArithSpec(n_ops=2)
    task = make_task("arith", arith=spec, seed=3)
    assert task.spec == spec and task.seed == 3
    assert task.problems("train", 5) == make_task("arith", arith=spec, seed=3).problems("train", 5)
    assert task.problems("train", 5) != make_task("arith", arith=spec, seed=4).problems("train", 5)
    with pytest.raises(ValueError, match="unknown task 'gsm8k'; choose one of: arith, math"):
        make_task("gsm8k")

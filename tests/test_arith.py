"""The synthetic arithmetic task: generator, difficulty knobs, reference solutions, verifier, splits."""

from __future__ import annotations

import operator
import re
import time

import pytest

from sgpo.judges import ArithRuleJudge, JudgeRequest
from sgpo.tasks import Task
from sgpo.tasks.arith import ArithSpec, ArithTask, Chain, extract_answer, render, split_of
from sgpo.tasks.base import Problem
from sgpo.tasks.steps import split_steps

PHRASES = {"Add": "+", "Subtract": "-", "Multiply by": "*", "Divide by": "/"}
PY_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}


def parse_by_hand(question: str) -> tuple[int, list[tuple[str, int]]]:
    """Read 'Start with N. Add 5. ...' independently of the task's own parser."""
    sentences = [s.strip() for s in question.split(".") if s.strip()]
    assert sentences[0].startswith("Start with ")
    start = int(sentences[0].removeprefix("Start with "))
    ops = []
    for s in sentences[1:]:
        words, number = s.rsplit(" ", 1)
        ops.append((PHRASES[words], int(number)))
    return start, ops


# --------------------------------------------------------------------------- generator


def test_generator_is_seeded():
    a = ArithTask(seed=0).problems("train", 50)
    assert a == ArithTask(seed=0).problems("train", 50)
    assert a != ArithTask(seed=1).problems("train", 50)
    assert ArithTask(seed=0).problems("train", 20) == a[:20]  # a prefix: asking for more adds problems


def test_problems_are_distinct_and_well_formed():
    problems = ArithTask().problems("train", 200)
    assert len({p.question for p in problems}) == 200
    assert len({p.id for p in problems}) == 200
    for p in problems:
        assert isinstance(p, Problem)
        assert p.reference.split("\n")[-1] == f"Answer: {p.answer}"


def test_splits_never_share_a_problem():
    task = ArithTask(seed=0)
    splits = {s: {p.question for p in task.problems(s, n)} for s, n in [("train", 400), ("validation", 100), ("test", 100)]}
    assert not splits["train"] & splits["validation"]
    assert not splits["train"] & splits["test"]
    assert not splits["validation"] & splits["test"]
    for name, questions in splits.items():
        assert {split_of(q) for q in questions} == {name}
    # Another seed draws other problems, but a problem's split is a property of its text.
    other = {p.question for p in ArithTask(seed=9).problems("test", 100)}
    assert not other & (splits["train"] | splits["validation"])


def test_split_fractions():
    questions = [f"question {i}" for i in range(5000)]
    shares = {s: sum(split_of(q, 0.1, 0.2) == s for q in questions) / 5000 for s in ("train", "validation", "test")}
    assert shares["validation"] == pytest.approx(0.1, abs=0.02)
    assert shares["test"] == pytest.approx(0.2, abs=0.02)
    assert shares["train"] == pytest.approx(0.7, abs=0.02)


@pytest.mark.parametrize(
    "spec",
    [
        ArithSpec(),
        ArithSpec(n_ops=1),
        ArithSpec(n_ops=8, start_max=50, operand_max=9, factor_max=3, value_max=200),
        ArithSpec(n_ops=3, ops=("mul",), factor_max=3, start_max=20),
        ArithSpec(n_ops=4, ops=("div", "add")),
        ArithSpec(n_ops=2, ops=("div",), start_max=60, factor_max=6),
        ArithSpec(n_ops=5, ops=("sub", "add"), operand_max=3),
    ],
)
def test_difficulty_knobs(spec):
    allowed = {{"add": "+", "sub": "-", "mul": "*", "div": "/"}[o] for o in spec.ops}
    for p in ArithTask(spec, seed=2).problems("train", 30):
        start, ops = parse_by_hand(p.question)
        assert len(ops) == spec.n_ops
        assert 1 <= start <= spec.start_max
        value = start
        for op, b in ops:
            assert op in allowed
            if op in "+-":
                assert 1 <= b <= spec.operand_max
            else:
                assert 2 <= b <= spec.factor_max
            if op == "/":
                assert value % b == 0  # division is exact
            value = PY_OPS[op](value, b)
            assert 0 <= value <= spec.value_max
        assert p.answer == str(value)


def test_reference_is_one_line_per_step_and_the_rule_judge_finds_no_error():
    judge = ArithRuleJudge()
    for spec in (ArithSpec(), ArithSpec(n_ops=6, ops=("add", "sub", "mul", "div"))):
        task = ArithTask(spec, seed=4)
        problems = task.problems("train", 50)
        for p in problems:
            start, ops = parse_by_hand(p.question)
            lines, value = [], start
            for op, b in ops:
                new = PY_OPS[op](value, b)
                lines.append(f"{value} {op} {b} = {new}")
                value = new
            assert p.reference == "\n".join(lines + [f"Answer: {value}"])
        requests = [JudgeRequest(p.question, split_steps(p.reference, task.step_mode), p.reference, p.answer) for p in problems]
        verdicts = judge.judge(requests)
        assert all(v.ok and v.first_error == -1 and v.n_steps == spec.n_ops + 1 for v in verdicts)


def test_render_and_parse_round_trip():
    chain = Chain(7, (("+", 5), ("*", 3), ("-", 4), ("/", 4)))
    p = render(chain)
    assert p.question == "Start with 7. Add 5. Multiply by 3. Subtract 4. Divide by 4."
    assert p.reference == "7 + 5 = 12\n12 * 3 = 36\n36 - 4 = 32\n32 / 4 = 8\nAnswer: 8"
    assert p.answer == "8"
    assert Chain.parse(p.question) == chain
    assert chain.values() == [7, 12, 36, 32, 8]
    with pytest.raises(ValueError, match="Start with"):
        Chain.parse("Add 5.")


def test_bad_specs_and_arguments():
    with pytest.raises(ValueError, match="unknown arithmetic ops.*pow"):
        ArithSpec(ops=("add", "pow"))
    with pytest.raises(ValueError, match="unknown arithmetic ops"):
        ArithSpec(ops=())
    with pytest.raises(ValueError, match="n_ops must be >= 1"):
        ArithSpec(n_ops=0)
    with pytest.raises(ValueError, match="factor_max >= 2"):
        ArithSpec(factor_max=1)
    with pytest.raises(ValueError, match="unknown split 'dev'.*train, validation, test"):
        ArithTask().problems("dev", 3)
    # Only one problem exists ("Start with 1. Add 1."): asking for two is an error, not a hang.
    tiny = ArithSpec(n_ops=1, start_max=1, operand_max=1, ops=("add",))
    with pytest.raises(ValueError, match="fewer than 2 distinct"):
        ArithTask(tiny).problems(split_of("Start with 1. Add 1."), 2)


@pytest.mark.parametrize(
    "spec",
    [
        ArithSpec(n_ops=6, ops=("sub",), start_max=1, operand_max=1),  # 1 - 1 = 0, then stuck
        ArithSpec(n_ops=5, ops=("div",), start_max=7, factor_max=5),  # no 5 exact divisions of 1..7
        ArithSpec(n_ops=3, ops=("mul",), start_max=9, factor_max=9, value_max=7),  # 1 * 2 * 2 * 2 > 7
    ],
)
def test_impossible_spec_fails_instead_of_hanging(spec):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="no chain of"):
        ArithTask(spec).problems("train", 1)
    assert time.perf_counter() - t0 < 5


def test_hard_but_possible_specs_still_generate():
    # Only start values with enough factors survive; stuck chains restart with a new start value.
    problems = ArithTask(ArithSpec(n_ops=3, ops=("div",), start_max=40, factor_max=3), seed=0).problems("train", 3)
    for p in problems:
        start, ops = parse_by_hand(p.question)
        assert all(op == "/" for op, _ in ops) and len(ops) == 3


def test_task_protocol():
    task = ArithTask()
    assert isinstance(task.name, str) and task.step_mode == "line"
    assert isinstance(task.rule_judge(), ArithRuleJudge)
    _: Task = task  # structural: the attributes the trainer needs


# --------------------------------------------------------------------------- outcome verifier

P32 = render(Chain(7, (("+", 5), ("*", 3), ("-", 4))))  # answer 32


@pytest.mark.parametrize(
    "response, reward",
    [
        ("7 + 5 = 12\n12 * 3 = 36\n36 - 4 = 32\nAnswer: 32", 1.0),
        ("Let me think. 7 plus 5 is 12, times 3 is 36, minus 4 gives 32. The answer is 32.", 1.0),
        ("So the answer is: 32", 1.0),
        ("answer = 32", 1.0),
        ("**Answer:** 32", 1.0),
        ("**Answer: 32**", 1.0),
        ("Answer: $32$", 1.0),
        (r"The final answer is $\boxed{32}$.", 1.0),
        (r"\boxed{ 32 }", 1.0),
        ("Answer: 32.0", 1.0),
        ("ANSWER: 32", 1.0),
        ("Answer: 31\nWait, I made a mistake. Answer: 32", 1.0),  # the last answer counts
        ("Answer: 32\nWait, I made a mistake. Answer: 31", 0.0),
        (r"Answer: 31. Actually \boxed{32}", 1.0),
        ("Answer: 33", 0.0),
        ("Answer: 320", 0.0),
        ("Answer: 3", 0.0),
        ("Answer: -32", 0.0),
        ("Answer: 32.5", 0.0),
        ("7 + 5 = 12\n12 * 3 = 36\n36 - 4 = 32", 0.0),  # no final answer: not read from the work
        ("", 0.0),
        ("I don't know.", 0.0),
    ],
)
def test_verify_reads_the_final_answer(response, reward):
    assert ArithTask().verify(response, P32) == reward


def test_extract_answer():
    assert extract_answer("Answer: -7") == -7
    assert extract_answer("the answer is 1,024") == 1024
    assert extract_answer("no answer here") is None
    assert extract_answer("Answer: 2.5") is None
    assert extract_answer("Answer: 12. Then more text with 99") == 12


def test_generated_answers_verify():
    task = ArithTask(ArithSpec(n_ops=5, ops=("add", "sub", "mul", "div")), seed=1)
    for p in task.problems("validation", 30):
        assert task.verify(p.reference, p) == 1.0
        assert task.verify(re.sub(r"Answer: (\d+)", lambda m: f"Answer: {int(m.group(1)) + 1}", p.reference), p) == 0.0

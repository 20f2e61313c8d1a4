"""An exact rule judge for the arithmetic task."""

from __future__ import annotations

import re

from sgpo.judges.base import INVALID, JudgeRequest, Verdict
from sgpo.tasks.arith import Chain, apply, extract_answer, parse_equations, parse_int

_START = re.compile(r"start with (-?\d+)", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
# A leading step label ("Step 2:", "### Step 2.", "2. ..." before more text) is not content.
_LABEL = re.compile(r"^[\s#>*-]*(?:(?:step|schritt|étape)\s*\d+\s*[:.)]?|\d+[.)](?=\s+\S))", re.IGNORECASE)


class ArithRuleJudge:
    """Walks the response's steps along the problem's chain of operations.

    A step is wrong when it contains
      - an equation whose arithmetic is false,
      - a true equation that is not the next operation of the chain (a skipped operation, an
        operation out of order, a wrong operand) and not a repeat of one already done,
      - an answer other than the problem's final value,
      - digits but no equation or answer that can be read ("12 3 =", garbage),
      - "Start with N" for the wrong N.
    ``a + b`` and ``a * b`` may be written with the operands swapped. Steps of plain prose (no
    digits once a leading label such as "Step 2:" is removed) are neither right nor wrong and
    never the first error.
    The judge reads the problem text, so it needs no reference solution.
    """

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        return [self._judge_one(r) for r in requests]

    def _judge_one(self, request: JudgeRequest) -> Verdict:
        K = len(request.steps)
        try:
            chain = Chain.parse(request.problem)
        except ValueError as e:
            return Verdict.failed(K, INVALID, raw=str(e))
        values = chain.values()
        done = 0  # operations of the chain completed so far
        for k, step in enumerate(request.steps):
            done = _check_step(step, chain, values, done)
            if done is None:
                return Verdict(k, K, raw=f"step {k} wrong: {step!r}")
        return Verdict(-1, K, raw="no error found")


def _check_step(step: str, chain: Chain, values: list[int], done: int) -> int | None:
    """Operations completed after ``step`` (``done`` before it), or None if the step is wrong."""
    equations = parse_equations(step)
    answer = extract_answer(step)
    if not equations and answer is None:
        start = _START.search(step)
        if start is not None:
            return done if parse_int(start.group(1)) == chain.start else None  # a number int() refuses is a wrong start
        return done if _DIGIT.search(_LABEL.sub("", step, count=1)) is None else None
    expected = [(values[i], *chain.ops[i]) for i in range(len(chain.ops))]
    for a, op, b, c in equations:
        if apply(a, op, b) != c:
            return None
        forms = {(a, op, b), (b, op, a)} if op in "+*" else {(a, op, b)}
        if done < len(expected) and expected[done] in forms:
            done += 1
        elif not forms & set(expected[:done]):
            return None
    return done if answer is None or answer == values[-1] else None

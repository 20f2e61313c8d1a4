"""A step-verifiable arithmetic task.

Problem:   "Start with 7. Add 5. Multiply by 3. Subtract 4."
Reference: "7 + 5 = 12\n12 * 3 = 36\n36 - 4 = 32\nAnswer: 32"

Every step of a solution is one line that a rule can check exactly, so the rule judge
(:class:`ArithRuleJudge`, here because it reads the problems with this task's parsers) gives the
true first error and SGPO can be studied without an LLM judge.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from sgpo.judges.base import INVALID, JudgeRequest, Verdict
from sgpo.tasks.base import SPLITS, Check, Problem

#: op name -> (symbol in solutions, phrase in problems)
OPS = {
    "add": ("+", "Add {b}."),
    "sub": ("-", "Subtract {b}."),
    "mul": ("*", "Multiply by {b}."),
    "div": ("/", "Divide by {b}."),
}
_PHRASE = re.compile(r"(Add|Subtract|Multiply by|Divide by) (\d+)\.")
_PHRASE_OP = {"Add": "+", "Subtract": "-", "Multiply by": "*", "Divide by": "/"}
_START = re.compile(r"Start with (-?\d+)\.")
# (?<!\d): the first number starts where a run of digits starts, never inside one (a match from inside
# a run would fail where one from its start failed), so a long run is scanned in linear time; without
# it 20,000 digits took 9 s.
EQUATION = re.compile(r"(-?(?<!\d)\d+)\s*([-+*/x×÷·]|\\times|\\cdot|\\div)\s*(-?\d+)\s*=\s*(-?\d+)")
_SYMBOL = {"x": "*", "×": "*", "·": "*", "\\times": "*", "\\cdot": "*", "÷": "/", "\\div": "/"}
# A number as models write it: -12, 1,000, 32.0 (a non-integral value is not an integer answer).
_NUMBER = r"(-?\d+(?:,\d{3})*(?:\.\d+)?)"
# "Answer: 32", "the answer is 32", "**Answer:** 32", "Answer: $32$", "answer = (32)".
_ANSWER = re.compile(r"answer\s*(?:is\b)?[\s:=*_$(\[]*" + _NUMBER, re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{\s*" + _NUMBER + r"\s*\}")


def apply(a: int, op: str, b: int) -> int | None:
    """a op b over the integers; None where the task does not define it (inexact division)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/" and b != 0 and a % b == 0:
        return a // b
    return None


def parse_int(digits: str) -> int | None:
    """``int(digits)``, or None for a number too long for Python to convert (over
    ``sys.get_int_max_str_digits()`` digits, 4300 by default): a model may write one, it is never an answer."""
    try:
        return int(digits)
    except ValueError:
        return None


def parse_equations(text: str) -> list[tuple[int, str, int, int]]:
    """All ``a op b = c`` in ``text`` as (a, op, b, c), with x/×/÷ normalised to * and /.

    An equation with a number too long to convert (thousands of digits) is left out.
    """
    out = []
    for a, op, b, c in EQUATION.findall(text):
        numbers = (parse_int(a), parse_int(b), parse_int(c))
        if None not in numbers:
            out.append((numbers[0], _SYMBOL.get(op, op), numbers[1], numbers[2]))
    return out


def _as_int(number: str) -> int | None:
    """``"1,000"`` -> 1000, ``"32.0"`` -> 32, ``"32.5"`` -> None (and None for thousands of digits)."""
    whole, _, frac = number.replace(",", "").partition(".")
    return parse_int(whole) if frac.strip("0") == "" else None


def extract_answer(response: str) -> int | None:
    """The last "Answer: N" (also "the answer is N", markdown/LaTeX around N) or \\boxed{N}.

    None when there is none, or when the last one is not an integer (e.g. 32.5).
    """
    found = [(m.start(), m.group(1)) for m in _ANSWER.finditer(response)]
    found += [(m.start(), m.group(1)) for m in _BOXED.finditer(response)]
    return _as_int(max(found)[1]) if found else None


@dataclass(frozen=True)
class Chain:
    """The operations of a problem: start value, then (op symbol, operand) pairs."""

    start: int
    ops: tuple[tuple[str, int], ...]

    def values(self) -> list[int]:
        """v_0 = start, v_k = v_{k-1} op_k b_k."""
        vals = [self.start]
        for op, b in self.ops:
            vals.append(apply(vals[-1], op, b))
        return vals

    @classmethod
    def parse(cls, question: str) -> "Chain":
        start = _START.search(question)
        if start is None:
            raise ValueError(f"not an arithmetic problem (no 'Start with N.'): {question!r}")
        return cls(int(start.group(1)), tuple((_PHRASE_OP[w], int(b)) for w, b in _PHRASE.findall(question)))


@dataclass(frozen=True)
class ArithSpec:
    """Difficulty knobs of the arithmetic task."""

    n_ops: int = 4
    """Number of operations per problem (solution steps before the answer line)."""
    start_max: int = 20
    """Start value drawn from 1..start_max."""
    operand_max: int = 20
    """Operand of add/sub drawn from 1..operand_max."""
    factor_max: int = 5
    """Operand of mul/div drawn from 2..factor_max."""
    ops: tuple[str, ...] = ("add", "sub", "mul")
    """Operations allowed: any of add, sub, mul, div (div only where exact)."""
    value_max: int = 999
    """Intermediate values stay in 0..value_max (operations that would leave it are redrawn)."""

    def __post_init__(self):
        unknown = set(self.ops) - set(OPS)
        if unknown or not self.ops:
            raise ValueError(f"unknown arithmetic ops {sorted(unknown)}; choose from: {', '.join(OPS)}")
        if self.n_ops < 1:
            raise ValueError(f"n_ops must be >= 1, got {self.n_ops}")
        if self.start_max < 1 or self.operand_max < 1 or self.factor_max < 2 or self.value_max < 1:
            raise ValueError(
                "need start_max >= 1, operand_max >= 1, factor_max >= 2, value_max >= 1; got "
                f"{self.start_max}, {self.operand_max}, {self.factor_max}, {self.value_max}"
            )


def split_of(question: str, val_frac: float = 0.1, test_frac: float = 0.1) -> str:
    """The split a problem belongs to, from a stable hash of its text: splits never share a problem."""
    u = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big") / 2**64
    return "validation" if u < val_frac else "test" if u < val_frac + test_frac else "train"


_MAX_REDRAWS = 100  # failed draws in a row before a chain is taken as stuck and restarted
_MAX_RESTARTS = 1000


def _draw(spec: ArithSpec, rng: random.Random) -> Chain:
    # A chain can get stuck (only "sub" and value 0, only "div" and a prime value): restart it
    # from a new start value, and give up with an error rather than loop forever.
    for _ in range(_MAX_RESTARTS):
        value = rng.randint(1, spec.start_max)
        start, ops, failed = value, [], 0
        while len(ops) < spec.n_ops and failed < _MAX_REDRAWS:
            name = rng.choice(spec.ops)
            symbol = OPS[name][0]
            b = rng.randint(1, spec.operand_max) if name in ("add", "sub") else rng.randint(2, spec.factor_max)
            new = apply(value, symbol, b)
            if new is None or not 0 <= new <= spec.value_max:
                failed += 1
                continue
            ops.append((symbol, b))
            value, failed = new, 0
        if len(ops) == spec.n_ops:
            return Chain(start, tuple(ops))
    raise ValueError(
        f"the arithmetic spec {spec} found no chain of {spec.n_ops} operations in {_MAX_RESTARTS} tries; "
        "widen the ranges or allow more ops"
    )


def render(chain: Chain) -> Problem:
    """The problem text, the one-line-per-step reference solution and the answer of a chain."""
    phrase = {sym: OPS[name][1] for name, (sym, _) in OPS.items()}
    question = " ".join([f"Start with {chain.start}."] + [phrase[op].format(b=b) for op, b in chain.ops])
    vals = chain.values()
    lines = [f"{vals[i]} {op} {b} = {vals[i + 1]}" for i, (op, b) in enumerate(chain.ops)]
    answer = str(vals[-1])
    pid = hashlib.sha256(question.encode()).hexdigest()[:12]
    return Problem(pid, question, "\n".join(lines + [f"Answer: {answer}"]), answer)


class ArithTask:
    """Seeded generator of multi-step arithmetic problems, outcome verifier and rule judge."""

    name = "arith"
    step_mode = "line"
    system_prompt = None  # the tiny policies are trained on bare questions

    def __init__(self, spec: ArithSpec = ArithSpec(), seed: int = 0, val_frac: float = 0.1, test_frac: float = 0.1):
        self.spec, self.seed = spec, seed
        self.val_frac, self.test_frac = val_frac, test_frac

    def problems(self, split: str, n: int) -> list[Problem]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        rng = random.Random(f"{self.seed}-{split}")
        seen: dict[str, Problem] = {}
        for _ in range(200 * n + 1000):
            if len(seen) == n:
                break
            problem = render(_draw(self.spec, rng))
            if problem.question not in seen and split_of(problem.question, self.val_frac, self.test_frac) == split:
                seen[problem.question] = problem
        if len(seen) < n:
            raise ValueError(f"the arithmetic spec {self.spec} has fewer than {n} distinct {split} problems")
        return list(seen.values())

    def check(self, response: str, problem: Problem) -> Check:
        answer = extract_answer(response)
        if answer is None:
            return Check(False, "no_answer")
        correct = str(answer) == problem.answer
        return Check(correct, "correct" if correct else "wrong", str(answer))

    def verify(self, response: str, problem: Problem) -> float:
        return float(self.check(response, problem).correct)

    def gold_answer(self, ground_truth: str) -> str:
        return str(ground_truth).strip()

    def verify_stats(self) -> dict[str, int]:
        return {}  # checking is a regex: nothing worth counting

    def rule_judge(self) -> "ArithRuleJudge":
        return ArithRuleJudge()

    def close(self) -> None:
        pass


# -- the exact rule judge ------------------------------------------------------------------------

_START_STEP = re.compile(r"start with (-?\d+)", re.IGNORECASE)  # a step restating the start
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
        start = _START_STEP.search(step)
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

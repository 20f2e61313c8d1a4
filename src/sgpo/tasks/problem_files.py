"""Problems from JSONL/JSON/Parquet files, with configurable or auto-detected field names.

Every row is checked before anything trains or samples: a missing problem or answer field, an
empty answer or a malformed line is a :class:`ProblemFileError` that names the file, the line
(or row) and the field. Common benchmark layouts read without options:

- MATH-500: ``problem``, ``solution``, ``answer``;
- GSM8K: ``question``, ``answer`` = "reasoning #### 42" (the answer is what follows ``####``;
  the reasoning before it serves as the reference solution when no reference field is given);
- AIME-style: ``problem``, ``answer`` (often an integer);
- MATH without an answer field: the gold answer is the last ``\\boxed{}`` of ``solution``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sgpo.errors import ConfigError, DataError
from sgpo.files.rows import load_rows
from sgpo.tasks.base import Problem
from sgpo.tasks.verify import gold_answer

#: Field names tried, in order, when a field is not given.
PROBLEM_FIELDS = ("problem", "question", "prompt", "input", "query", "Problem", "Question")
ANSWER_FIELDS = ("answer", "final_answer", "expected_answer", "target", "gold", "Answer")
REFERENCE_FIELDS = ("solution", "reference", "rationale", "reasoning", "Solution")
ID_FIELDS = ("id", "unique_id", "problem_id", "idx", "ID")


class ProblemFileError(DataError, ConfigError):
    """A problem file that cannot be used as it is; the CLI reports it without a traceback (exit 2)."""


@dataclass(frozen=True)
class Fields:
    """Which field of a row holds what. None for ``reference``/``id``: none (ids become file:line)."""

    problem: str = "problem"
    answer: str = "answer"
    reference: str | None = "solution"
    id: str | None = None

    def describe(self) -> str:
        return f"problem={self.problem!r} answer={self.answer!r} reference={self.reference!r} id={self.id!r}"


def detect_fields(columns, problem: str | None = None, answer: str | None = None,
                  reference: str | None = None, id: str | None = None, complete=None) -> Fields:
    """Fields for a file with ``columns``: the names given, else the first known name present.

    With no answer column but a ``solution`` column, the answer is read from the solution (its
    last ``\\boxed{}``), as in the MATH data set. A reference or id field is only detected among
    ``complete`` columns (those every row fills; default: all of ``columns``).
    """
    cols, complete = list(columns), list(columns if complete is None else complete)
    pick = lambda given, known, among: given or next((c for c in known if c in among), None)  # noqa: E731
    found_answer = pick(answer, ANSWER_FIELDS, cols) or ("solution" if "solution" in cols else None)
    return Fields(
        problem=pick(problem, PROBLEM_FIELDS, cols) or PROBLEM_FIELDS[0],
        answer=found_answer or ANSWER_FIELDS[0],
        reference=pick(reference, [f for f in REFERENCE_FIELDS if f != found_answer], complete),
        id=pick(id, ID_FIELDS, complete),
    )


def _text(value) -> str | None:
    """A field value as text: strings stripped, integers and floats printed (AIME answers are ints)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def _problem(where: str, row: dict, fields: Fields, default_id: str) -> Problem:
    def need(field: str, what: str) -> str:
        if field not in row or row[field] is None:
            present = ", ".join(k for k, v in row.items() if v is not None)
            raise ProblemFileError(f"{where}: field {field!r} ({what}) is missing; this row has: {present}")
        text = _text(row[field])
        if text is None:
            raise ProblemFileError(f"{where}: field {field!r} ({what}) must be text or a number, got {type(row[field]).__name__}")
        if not text:
            raise ProblemFileError(f"{where}: field {field!r} ({what}) is empty")
        return text

    question = need(fields.problem, "the problem")
    raw_answer = need(fields.answer, "the answer")
    answer = gold_answer(raw_answer)
    if not answer:
        raise ProblemFileError(f"{where}: field {fields.answer!r} (the answer) has an empty final answer: {raw_answer!r}")
    if fields.reference is not None:
        reference = need(fields.reference, "the reference solution")
    elif "####" in raw_answer:  # GSM8K: the reasoning before "####" is a step-by-step solution
        reference = raw_answer.rsplit("####", 1)[0].strip()
    else:
        reference = ""
    pid = need(fields.id, "the id") if fields.id is not None else default_id
    return Problem(pid, question, reference, answer)


def _load(path: str | Path) -> list[tuple[str, dict]]:
    try:
        return load_rows(path)
    except DataError as e:
        raise ProblemFileError(str(e)) from None


def _convert(path, rows: list[tuple[str, dict]], fields: Fields) -> list[Problem]:
    stem = Path(path).stem
    return [_problem(where, row, fields, f"{stem}-{i + 1}") for i, (where, row) in enumerate(rows)]


def read_problems(path: str | Path, fields: Fields = Fields()) -> list[Problem]:
    """Every row of ``path`` as a Problem; the first bad row raises ProblemFileError naming it."""
    return _convert(path, _load(path), fields)


def read_problems_auto(path: str | Path, problem: str | None = None, answer: str | None = None,
                       reference: str | None = None, id: str | None = None) -> tuple[list[Problem], Fields]:
    """Problems with the given field names and the others detected (:func:`detect_fields`); and the fields used."""
    rows = _load(path)
    filled = [{k for k, v in row.items() if v is not None} for _, row in rows]
    fields = detect_fields(set().union(*filled), problem, answer, reference, id, complete=set.intersection(*filled))
    return _convert(path, rows, fields), fields

"""Step-labelled data: ProcessBench-format rows for judge evaluation, stepwise rows for training.

ProcessBench format (one JSON object per line)::

    {"id": "...", "problem": "...", "steps": ["...", ...], "label": 2,
     "final_answer_correct": false, "reference": "..."}   # reference optional

``label`` is the 0-based index of the earliest wrong step, -1 when every step is right.

Responses to judge (``sgpo judge``): the problem (``problem``, or ``question`` / ``prompt``), the
response as text (``response`` / ``completion``, split into steps) or already split (``steps``),
and optionally ``reference``, ``answer`` and ``id``.

Stepwise format (TRL's stepwise supervision)::

    {"prompt": "...", "completions": ["step", ...], "labels": [true, true, false]}

``labels[i]`` says whether the solution is still right after step i. Both kinds are read with
line-numbered errors, so a bad row is reported with its file and line before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sgpo.errors import DataError

# The line-numbered reader and writer are shared with the problem files (sgpo.files.rows).
from sgpo.files.rows import json_rows, write_jsonl
from sgpo.judges.base import JudgeRequest
from sgpo.tasks.steps import merge_steps, split_steps


@dataclass(frozen=True)
class LabelledSolution:
    """A problem, a solution split into steps, and where the solution first goes wrong."""

    id: str
    problem: str
    steps: list[str]
    label: int
    """0-based index of the earliest wrong step; -1 when all steps are right."""
    final_answer_correct: bool | None = None
    reference: str | None = None

    def step_labels(self) -> list[bool]:
        """Per-step correctness of the prefix: right before the first error, wrong from it on."""
        k = len(self.steps) if self.label < 0 else self.label
        return [i < k for i in range(len(self.steps))]

    def to_processbench(self) -> dict:
        row = asdict(self)
        if row["reference"] is None:
            del row["reference"]
        return row


def first_error_from_labels(labels: list[bool]) -> int:
    """The index of the first False label, or -1."""
    return next((i for i, ok in enumerate(labels) if not ok), -1)


def _require(row, fields: tuple[str, ...], need: str) -> None:
    """Raise ValueError unless ``row`` is a JSON object holding every one of ``fields``."""
    if not isinstance(row, dict):
        raise ValueError("a row must be a JSON object")
    missing = [k for k in fields if k not in row]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)} (need {need})")


def _str_list(value, what: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{what} must be a non-empty list of strings")
    return value


def parse_processbench(row: dict, default_id: str) -> LabelledSolution:
    """One ProcessBench row; raises ValueError saying what is wrong."""
    _require(row, ("problem", "steps", "label"), "id, problem, steps, label, final_answer_correct")
    steps = _str_list(row["steps"], "steps")
    label = row["label"]
    if isinstance(label, bool) or not isinstance(label, int) or not -1 <= label < len(steps):
        raise ValueError(f"label must be an integer in -1..{len(steps) - 1} (the earliest wrong step), got {label!r}")
    reference = row.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ValueError("reference must be a string when present")
    fac = row.get("final_answer_correct")
    return LabelledSolution(str(row.get("id", default_id)), str(row["problem"]), steps, label,
                            None if fac is None else bool(fac), reference)


def parse_stepwise(row: dict, default_id: str) -> LabelledSolution:
    """One stepwise row (prompt, completions, labels) as a labelled solution."""
    _require(row, ("prompt", "completions", "labels"), "prompt, completions, labels")
    steps = _str_list(row["completions"], "completions")
    labels = row["labels"]
    if not isinstance(labels, list) or len(labels) != len(steps) or not all(isinstance(b, bool) for b in labels):
        raise ValueError(f"labels must be a list of {len(steps)} booleans, one per completion step")
    return LabelledSolution(str(row.get("id", default_id)), str(row["prompt"]), steps, first_error_from_labels(labels),
                            None, row.get("reference"))


def read_processbench(path: str | Path) -> list[LabelledSolution]:
    """All rows of a ProcessBench-format file; the first bad row raises DataError with file:line."""
    return _read(path, parse_processbench)


def read_labelled(path: str | Path) -> list[LabelledSolution]:
    """Rows in either format (decided per row: ``completions`` means stepwise)."""
    return _read(path, lambda row, i: (parse_stepwise if isinstance(row, dict) and "completions" in row else parse_processbench)(row, i))


def _read(path, parse) -> list[LabelledSolution]:
    out = []
    for n, row in json_rows(path):
        try:
            out.append(parse(row, f"{Path(path).stem}-{n}"))
        except ValueError as e:
            raise DataError(f"{path}:{n}: {e}") from None
    if not out:
        raise DataError(f"{path}: no rows")
    return out


_PROBLEM = ("problem", "question", "prompt")
_RESPONSE = ("response", "completion")


def _first(row: dict, keys: tuple[str, ...]):
    return next((row[k] for k in keys if k in row), None)


def read_requests(path: str | Path, step_mode: str = "auto", max_steps: int | None = None) -> tuple[list[str], list[JudgeRequest]]:
    """(ids, requests) from a JSONL of responses; a bad row raises DataError with file:line."""
    ids, requests = [], []
    for n, row in json_rows(path):
        where = f"{path}:{n}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: a row must be a JSON object")
        problem = _first(row, _PROBLEM)
        if not isinstance(problem, str):
            raise DataError(f"{where}: needs the problem text in one of: {', '.join(_PROBLEM)}")
        if "steps" in row:
            steps = row["steps"]
            if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
                raise DataError(f"{where}: steps must be a list of strings")
            if max_steps is not None:
                steps = merge_steps(steps, max_steps)
        else:
            response = _first(row, _RESPONSE)
            if not isinstance(response, str):
                raise DataError(f"{where}: needs the response in one of: {', '.join(_RESPONSE)}, or steps")
            steps = split_steps(response, step_mode, max_steps)
        answer = row.get("answer")
        ids.append(str(row.get("id", n)))
        requests.append(JudgeRequest(problem, steps, row.get("reference"), None if answer is None else str(answer)))
    return ids, requests


__all__ = [
    "DataError", "LabelledSolution", "first_error_from_labels", "parse_processbench", "parse_stepwise", "read_labelled",
    "read_processbench", "read_requests", "write_jsonl",
]

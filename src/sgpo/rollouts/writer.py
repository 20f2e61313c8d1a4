"""Writing a rollouts file (the format: :mod:`sgpo.rollouts.file`), one flushed line per response."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from sgpo.files.outputs import OutputExists
from sgpo.judges.base import INVALID, Verdict
from sgpo.rollouts.file import FORMAT, VERSION, RolloutRecord, check_header, is_int, parse_record


class RolloutsWriter:
    """Writes the header, then records one line at a time, flushed; fsync after each group.

    A crash (even SIGKILL) loses at most the line being written, which the reader recognises.
    Refuses to replace an existing file unless ``overwrite``; a replacement is written beside the
    old file and takes its place only when closed after success, so a failed run keeps the old one.
    """

    def __init__(self, path: str | Path, header: dict, overwrite: bool = False):
        self.path = Path(path)
        header = {"format": FORMAT, "version": VERSION, **header}
        check_header(header, f"{self.path}:1")
        self.group_size = int(header["group_size"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._target = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}") if overwrite and self.path.exists() else self.path
        try:
            self._f = self._target.open("w" if overwrite else "x", encoding="utf-8")
        except FileExistsError:
            raise OutputExists(f"{self.path} exists; pass --overwrite to replace it") from None  # e.g. a run started beside us
        self._line = 1
        self._write(header)
        self.end_group()

    def _write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
        self._f.flush()

    def write_group(self, records: list[RolloutRecord]) -> None:
        """Append one group's G records (validated first, so a bad record never reaches the file)."""
        if len(records) != self.group_size:
            raise ValueError(f"a group needs {self.group_size} records, got {len(records)}")
        for r in records:
            self._line += 1
            r = _storable(r)
            parse_record(r.to_json(), f"{self.path}:{self._line}", self.group_size, self._line)
            self._write(r.to_json())
        self.end_group()

    def end_group(self) -> None:
        os.fsync(self._f.fileno())

    def close(self, ok: bool = True) -> None:
        self._f.close()
        if self._target != self.path:
            os.replace(self._target, self.path) if ok else os.unlink(self._target)

    def __enter__(self) -> "RolloutsWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(ok=exc_type is None)


def _storable(r: RolloutRecord) -> RolloutRecord:
    """``r`` with an ``ok`` verdict whose first-error index names none of its steps stored as what it
    is, an ``invalid`` verdict (the grading step counts it as a failure either way; the reader
    refuses an out-of-range index)."""
    v = r.verdict
    if v is None or not is_int(v.first_error) or not is_int(v.n_steps) or -1 <= v.first_error < v.n_steps:
        return r
    raw = v.raw if v.raw is not None else f"out-of-range verdict: first_error={v.first_error}, n_steps={v.n_steps}"
    return dataclasses.replace(r, verdict=Verdict.failed(max(v.n_steps, 0), INVALID if v.ok else v.status, raw))

"""Row files (JSONL, JSON, Parquet) read with errors that say where: file and line (or row).

Every data file a user hands to sgpo (problems, step-labelled solutions, responses to judge) is a
list of JSON-like rows. ``datasets`` loads them, but a malformed JSON line makes it fail with
"An error occurred while generating the dataset"; so JSON files are first parsed here line by
line, and the first bad line is reported as ``file:line`` before any work starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

#: suffix -> the ``datasets`` builder that reads it
FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


from sgpo.errors import DataError  # noqa: F401,E402 - re-exported: readers raise it from here
from sgpo.files.outputs import atomic_path  # noqa: E402


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text: {e.reason} at byte {e.start}") from None


def json_rows(path: str | Path) -> Iterator[tuple[int, object]]:
    """(line number, value) for each non-blank line of a JSON Lines file, or (element number,
    value) for each element of a file holding one JSON array. Values are not checked to be objects."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = _read_text(path)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
        except ValueError as e:  # an integer of thousands of digits: Python refuses to convert it
            raise DataError(f"{path}: not valid JSON: {e}") from None
        yield from ((i + 1, row) for i, row in enumerate(data))
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError as e:  # JSONDecodeError, or an integer of thousands of digits
            raise DataError(f"{path}:{n}: not valid JSON: {e}") from None


def _json_locations(path: Path) -> list[str]:
    """Where each row of a JSON(L) file is, checking on the way that every row is an object."""
    is_array = _read_text(path).lstrip().startswith("[") and path.suffix == ".json"
    where = []
    for n, row in json_rows(path):
        loc = f"{path}: element {n}" if is_array else f"{path}:{n}"
        if not isinstance(row, dict):
            raise DataError(f"{loc}: a row must be a JSON object, got {type(row).__name__}")
        where.append(loc)
    return where


def load_rows(path: str | Path) -> list[tuple[str, dict]]:
    """(location, row) for every row of a JSONL, JSON or Parquet file, loaded with ``datasets``.

    The location is ``file:line`` for JSON Lines, ``file: element N`` for a JSON array and
    ``file: row N`` (1-based) for Parquet. Fields a row lacks come back as None.
    """
    path = Path(path)
    builder = FORMATS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unsupported format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    where = _json_locations(path) if builder == "json" else None
    if where == []:
        raise DataError(f"{path}: no rows")
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        table = datasets.load_dataset(builder, data_files=str(path.resolve()), split="train")
    except Exception as e:  # datasets wraps the real cause; name it
        cause = e.__cause__ or e
        raise DataError(f"{path}: datasets cannot read it: {type(cause).__name__}: {cause}") from None
    if where is None:
        where = [f"{path}: row {i + 1}" for i in range(len(table))]
    if len(where) != len(table):  # pragma: no cover - a datasets/JSON disagreement we do not expect
        raise DataError(f"{path}: datasets read {len(table)} rows but the file has {len(where)}")
    if not where:
        raise DataError(f"{path}: no rows")
    return list(zip(where, table))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write dicts as JSON lines (creating parent directories); the file appears whole or not at all."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path

"""Where commands write: checked before any work, replaced only on request, never left half-written.

Every ``--out`` of every command goes through :func:`check_out` first, so a file where a
directory goes (or the reverse), or an earlier output that ``--overwrite`` did not release, is a
one-line error before a model loads or a judge is asked anything. Files are then written through
:func:`atomic_path` (a temporary sibling renamed into place), so a crash leaves the old output or
the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Literal, Sequence

from sgpo.errors import ConfigError


class OutputExists(ConfigError, FileExistsError):
    """An earlier output is where this one goes, and ``--overwrite`` was not given: bad input."""


def check_out(path: str | Path, kind: Literal["file", "dir"], overwrite: bool = False, flag: str = "--out",
              names: Sequence[str] | None = None) -> Path:
    """``path`` if the command may write its output there, else a ConfigError.

    ``kind``: what the command writes at ``path``. A directory output is refused when it already
    holds any of ``names`` (what the command writes into it), or, with ``names`` None, anything at
    all; ``overwrite`` allows replacing those. A file or directory of the wrong kind is refused
    even with ``overwrite``: it is not an earlier output of this command.
    """
    path = Path(path).expanduser()
    for parent in path.parents:  # mkdir would fail under a file, after the work
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {path}: {parent} is a file, not a directory")
            break
    if kind == "file":
        if path.is_dir():
            raise ConfigError(f"{flag} {path} is a directory; this command writes a file there")
        if path.exists() and not overwrite:
            raise OutputExists(f"{flag} {path} exists; pass --overwrite to replace it")
        return path
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; this command writes a directory there")
    if path.is_dir() and not overwrite:
        held = [n for n in names if (path / n).exists()] if names is not None else sorted(os.listdir(path))
        if held:
            shown = ", ".join(held[:6]) + (", ..." if len(held) > 6 else "")
            raise OutputExists(f"{flag} {path} already holds {shown}; pass --overwrite to replace "
                              f"{'them' if names is not None else 'the directory'}, or choose another {flag}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write (a file or a directory); it replaces ``path`` when
    the block succeeds and is removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if tmp.is_dir() and path.is_dir():
        _remove(path)  # rename cannot replace a non-empty directory
    os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()

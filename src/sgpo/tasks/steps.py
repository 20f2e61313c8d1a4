"""Split a response into reasoning steps for the judge.

Modes: ``paragraph`` (blank lines), ``line`` (newlines), ``marker`` ("Step 1:", "Step 2." ...),
``auto`` (markers if there are at least two, else paragraphs if at least two, else lines).
Steps are stripped and never empty; no text is lost: joining the steps with whitespace gives
the response back up to whitespace.
"""

from __future__ import annotations

import re

SPLIT_MODES = ("auto", "paragraph", "line", "marker")

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
_MARKER = re.compile(r"(?im)^[ \t>*#-]*(?:step|schritt|étape)\s*\d+\s*[:.)]")


def _chunks(text: str, starts: list[int]) -> list[str]:
    bounds = [0, *starts, len(text)]
    parts = (text[a:b].strip() for a, b in zip(bounds, bounds[1:]))
    return [p for p in parts if p]


def _split_on(pattern: re.Pattern[str], text: str) -> list[str]:
    return [p.strip() for p in pattern.split(text) if p.strip()]


def split_steps(text: str, mode: str = "auto", max_steps: int | None = None) -> list[str]:
    """Split ``text`` into steps, then merge neighbours so there are at most ``max_steps``.

    Text before the first marker (in ``marker`` mode) is a step of its own.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown step split mode {mode!r}; choose one of: {', '.join(SPLIT_MODES)}")
    markers = [m.start() for m in _MARKER.finditer(text)]
    if mode == "auto":
        if len(markers) >= 2:
            mode = "marker"
        elif len(_split_on(_PARAGRAPH, text)) >= 2:
            mode = "paragraph"
        else:
            mode = "line"
    if mode == "marker":
        steps = _chunks(text, markers)
    elif mode == "paragraph":
        steps = _split_on(_PARAGRAPH, text)
    else:
        steps = _split_on(_LINE, text)
    return merge_steps(steps, max_steps) if max_steps is not None else steps


def merge_steps(steps: list[str], max_steps: int) -> list[str]:
    """Merge consecutive steps into ``max_steps`` runs of near-equal length, joined by newlines.

    When the division is uneven the earlier runs take one step more.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if len(steps) <= max_steps:
        return list(steps)
    size, extra = divmod(len(steps), max_steps)
    merged, i = [], 0
    for j in range(max_steps):
        n = size + (1 if j < extra else 0)
        merged.append("\n".join(steps[i : i + n]))
        i += n
    return merged

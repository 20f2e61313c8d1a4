"""The prompt an LLM judge sees, and the strict parser for what it answers.

The default template follows ProcessBench (Zheng et al., 2024): the steps are wrapped in tags
carrying their 0-based index, and the judge puts the index of the earliest wrong step, or -1,
in ``\\boxed{}``. Templates are plain text with these placeholders, replaced literally (so a
template may contain LaTeX braces such as ``\\boxed{}`` without escaping):

    {problem}            the problem text
    {reference_section}  "reference solution" block when the request has one, else empty
    {reference}          the bare reference solution (empty when there is none)
    {answer}             the reference final answer (empty when there is none)
    {steps}              the tagged steps
    {n_steps}            K, the number of steps
    {last_index}         K - 1
"""

from __future__ import annotations

import re
from pathlib import Path

from sgpo.judges.base import INVALID, JudgeRequest, Verdict

DEFAULT_SYSTEM = "You are a careful grader of step-by-step solutions. You check steps; you do not need to solve the problem."

DEFAULT_TEMPLATE = """\
The following is a math problem and a solution, split into steps. Each step is enclosed in tags \
that carry its index, counting from 0.

[Problem]

{problem}
{reference_section}
[Solution]

{steps}

Review the solution step by step. If a step contains an error (a wrong calculation, a wrong \
operation, a step that does not follow from the problem or the previous steps, or a wrong final \
answer), return the index of the earliest such step (0 to {last_index}). If every step is \
correct, return -1.

Put your final answer, a single index, in \\boxed{}, and write \\boxed only once."""

REFERENCE_SECTION = """
[Reference solution] (correct; use it to check the steps, the solution may still take another valid route)

{reference}
"""

_PLACEHOLDERS = ("problem", "reference_section", "reference", "answer", "steps", "n_steps", "last_index")


def tag_steps(steps: list[str]) -> str:
    """Steps wrapped in ``<step_i>`` tags, one block per step."""
    return "\n\n".join(f"<step_{i}>\n{s}\n</step_{i}>" for i, s in enumerate(steps))


def load_template(template: str | None = None, template_file: str | Path | None = None) -> str:
    """The template to use: inline text, else the file's text, else the default."""
    if template is not None and template_file is not None:
        raise ValueError("give a prompt template inline or as a file, not both")
    if template_file is not None:
        return Path(template_file).read_text()
    return template if template is not None else DEFAULT_TEMPLATE


def render_prompt(request: JudgeRequest, template: str = DEFAULT_TEMPLATE) -> str:
    """The user message for one request."""
    reference = request.reference or ""
    values = {
        "problem": request.problem,
        "reference_section": REFERENCE_SECTION.replace("{reference}", reference) if reference else "",
        "reference": reference,
        "answer": request.answer or "",
        "steps": tag_steps(request.steps),
        "n_steps": str(len(request.steps)),
        "last_index": str(len(request.steps) - 1),
    }
    # One pass over the template, so a placeholder inside a substituted value (a problem that
    # happens to contain "{steps}") is never expanded.
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in _PLACEHOLDERS))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], template)


def messages_for(request: JudgeRequest, template: str = DEFAULT_TEMPLATE, system: str | None = DEFAULT_SYSTEM) -> list[dict]:
    """Chat messages for one request."""
    user = {"role": "user", "content": render_prompt(request, template)}
    return [{"role": "system", "content": system}, user] if system else [user]


# --- parsing -------------------------------------------------------------------------------

_THINK_END = "</think>"
_INDEX = re.compile(r"\s*(-?\d+)\s*")


def boxed_contents(text: str) -> list[str | None]:
    r"""The contents of every ``\boxed{...}`` in ``text``, with balanced nested braces.

    A box that cannot be read (``\boxed`` without a brace, or never closed) yields None: it still
    counts as a box, and a reply like ``\boxed{3`` is rejected instead of being read as 3.
    """
    found, start = [], 0
    while (i := text.find("\\boxed", start)) >= 0:
        j = i + len("\\boxed")
        while j < len(text) and text[j] == " ":
            j += 1
        if j >= len(text) or text[j] != "{":
            found.append(None)  # "\boxed" without braces
            start = j
            continue
        depth, k = 0, j
        while k < len(text):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            if depth == 0:
                break
            k += 1
        found.append(text[j + 1 : k] if k < len(text) else None)
        start = k + 1
    return found


def parse_verdict(text: str | None, n_steps: int) -> Verdict:
    """Read the judge's reply strictly.

    Valid: exactly one ``\\boxed{i}`` (after any ``<think>...</think>`` block) whose content is an
    integer i with -1 <= i < n_steps. Anything else — no box, several boxes, a box that is not a
    single integer, an index out of range — is an ``invalid`` verdict, never a guess.
    """
    if text is None:
        return Verdict.failed(n_steps, INVALID, raw=None)
    # Reasoning models think aloud and may box candidate answers on the way; only the part
    # after the thinking counts.
    answer = text.rsplit(_THINK_END, 1)[-1] if _THINK_END in text else text
    boxes = boxed_contents(answer)
    if len(boxes) != 1:
        return Verdict.failed(n_steps, INVALID, raw=text)
    m = _INDEX.fullmatch(boxes[0]) if boxes[0] is not None else None
    if m is None:
        return Verdict.failed(n_steps, INVALID, raw=text)
    try:
        index = int(m.group(1))
    except ValueError:  # thousands of digits: Python refuses to convert them (and no step has such an index)
        return Verdict.failed(n_steps, INVALID, raw=text)
    if not -1 <= index < n_steps:
        return Verdict.failed(n_steps, INVALID, raw=text)
    return Verdict(index, n_steps, raw=text)

"""sgpo.tasks.steps: splitting a response into steps and merging them, without losing text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgpo.tasks.steps import SPLIT_MODES, merge_steps, split_steps


def squash(text: str) -> str:
    """The text without any whitespace: what splitting and merging must preserve."""
    return "".join(text.split())


# --------------------------------------------------------------------------- by example


def test_paragraph_mode():
    text = "First we add.\n7 + 5 = 12\n\nThen multiply.\n \t\n12 * 3 = 36\n\n\n\nDone."
    assert split_steps(text, "paragraph") == ["First we add.\n7 + 5 = 12", "Then multiply.", "12 * 3 = 36", "Done."]


def test_line_mode():
    text = "  7 + 5 = 12\n\n12 * 3 = 36  \r\n   \nAnswer: 36\n"
    assert split_steps(text, "line") == ["7 + 5 = 12", "12 * 3 = 36", "Answer: 36"]


def test_marker_mode_keeps_preamble_and_multiline_steps():
    text = "Let's solve it.\nStep 1: add 5\n7 + 5 = 12\nStep 2. multiply\n12 * 3 = 36\n### Step 3) answer 36"
    assert split_steps(text, "marker") == [
        "Let's solve it.",
        "Step 1: add 5\n7 + 5 = 12",
        "Step 2. multiply\n12 * 3 = 36",
        "### Step 3) answer 36",
    ]


def test_marker_mode_is_case_insensitive_and_needs_line_start():
    text = "step 1: a\nSTEP 2: b mentions Step 3: inline"
    assert split_steps(text, "marker") == ["step 1: a", "STEP 2: b mentions Step 3: inline"]


def test_auto_prefers_markers_then_paragraphs_then_lines():
    markers = "Intro\n\nStep 1: a\nb\n\nStep 2: c"
    assert split_steps(markers) == ["Intro", "Step 1: a\nb", "Step 2: c"]
    one_marker = "Step 1: a\nb\n\nc\nd"  # one marker is not enough: paragraphs
    assert split_steps(one_marker, "auto") == ["Step 1: a\nb", "c\nd"]
    lines = "a\nb\nc"
    assert split_steps(lines, "auto") == ["a", "b", "c"]
    assert split_steps("just one line") == ["just one line"]


def test_empty_and_blank_text_gives_no_steps():
    for mode in SPLIT_MODES:
        assert split_steps("", mode) == []
        assert split_steps(" \n\n \t\n", mode) == []


def test_merge_by_hand():
    steps = ["a", "b", "c", "d", "e", "f", "g"]
    # 7 steps into 3 runs: 7 = 3 + 2 + 2, the earlier runs take the extra step.
    assert merge_steps(steps, 3) == ["a\nb\nc", "d\ne", "f\ng"]
    assert merge_steps(steps, 1) == ["a\nb\nc\nd\ne\nf\ng"]
    assert merge_steps(steps, 7) == steps
    assert merge_steps(steps, 10) == steps
    assert split_steps("a\nb\nc\nd\ne", "line", max_steps=2) == ["a\nb\nc", "d\ne"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown step split mode 'sentence'.*auto, paragraph, line, marker"):
        split_steps("a", "sentence")
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        merge_steps(["a", "b"], 0)
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        split_steps("a\nb", "line", max_steps=0)  # 0 is an error, not "no limit"


# --------------------------------------------------------------------------- properties

WORDS = st.sampled_from(["7 + 5 = 12", "Answer: 3", "so", "we", "x", "Step", "step 2", "1.", "é", "", "  "])
PIECES = st.one_of(
    WORDS,
    st.sampled_from(["\n", "\n\n", "\n \n", "\r\n", "\t", " ", "Step 1: ", "\nStep 2.", "\n### Step 3)", "\n  step 10 :"]),
    st.text(max_size=8),
)
RESPONSES = st.lists(PIECES, max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=RESPONSES, mode=st.sampled_from(SPLIT_MODES), max_steps=st.one_of(st.none(), st.integers(1, 6)))
def test_split_loses_no_text(text, mode, max_steps):
    steps = split_steps(text, mode, max_steps)
    assert squash("".join(steps)) == squash(text)  # same characters, same order, modulo whitespace
    assert all(s and s == s.strip() for s in steps)  # stripped, never empty
    if max_steps is not None:
        assert len(steps) <= max_steps
        assert len(steps) == min(len(split_steps(text, mode)), max_steps)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200), mode=st.sampled_from(SPLIT_MODES))
def test_split_loses_no_text_on_arbitrary_unicode(text, mode):
    assert squash("".join(split_steps(text, mode))) == squash(text)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r"), min_size=1).filter(str.strip), max_size=20))
def test_line_mode_gives_back_the_lines(lines):
    assert split_steps("\n".join(lines), "line") == [line.strip() for line in lines]


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.text(min_size=1, max_size=10), max_size=25), max_steps=st.integers(1, 10))
def test_merge_keeps_order_and_balances(steps, max_steps):
    merged = merge_steps(steps, max_steps)
    assert "\n".join(merged) == "\n".join(steps)  # exact: merging joins neighbours with "\n"
    assert len(merged) == min(len(steps), max_steps)
    if len(steps) > max_steps:
        sizes = [m.count("\n") for m in merged]  # holds when steps contain no "\n" themselves
        if not any("\n" in s for s in steps):
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)

"""Property tests: every parser of outside input gives a result or a clear error, never a crash.

Outside input is what models write (answers, judge replies, steps), what users hand over (rollouts
files, problem files, ``key=value`` overrides). Each parser gets arbitrary text (or bytes, or JSON
rows) mixed with the tokens it looks for, and must return a well-formed result or raise the
project's documented error (``ConfigError``/``DataError`` and their subclasses, or the
``ValueError`` a function documents for a bad argument of the caller's), never anything else.

CI runs a few hundred examples per parser (the ``sgpo-fuzz`` hypothesis profile). 100 times more:

    SGPO_FUZZ_EXAMPLES=30000 pytest tests/test_fuzz.py     # or: python benchmarks/fuzz.py

``SGPO_FUZZ_EXAMPLES`` is the example count of the text parsers; the file-reading tests run a
fixed fraction of it (see :func:`examples`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sgpo.errors import ConfigError, DataError
from sgpo.judges.base import STATUSES, Verdict
from sgpo.judges.llm import Reply, reply_verdict, vote
from sgpo.judges.llm_http import _parse_body
from sgpo.judges.prompts import boxed_contents, parse_verdict
from sgpo.rollouts.file import RolloutRecord, RolloutsError, read_rollouts
from sgpo.rollouts.writer import RolloutsWriter
from sgpo.tasks import arith, verify
from sgpo.tasks.problem_files import Fields, ProblemFileError, _convert, read_problems
from sgpo.tasks.steps import SPLIT_MODES, merge_steps, split_steps
from sgpo.train.config import Config, load_config

#: Examples per text parser; the CI default keeps the whole file to a few seconds.
BASE = int(os.environ.get("SGPO_FUZZ_EXAMPLES", "300"))


# The profile of these tests (not loaded globally: other test files keep their own settings). No
# deadline: CI machines are shared and slow; no example database: every run explores afresh.
settings.register_profile(
    "sgpo-fuzz", max_examples=BASE, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def examples(share: float = 1.0) -> settings:
    """The ``sgpo-fuzz`` profile with ``share`` of :data:`BASE` examples (file-reading tests cost more per example)."""
    return settings(settings.get_profile("sgpo-fuzz"), max_examples=max(10, int(BASE * share)))

# -- text that looks like model output --------------------------------------------------------

#: Pieces the parsers look for, and pieces that have broken parsers before (a number longer than
#: Python converts to int, unclosed braces, markers at line starts, think blocks).
TOKENS = [
    "\\boxed{", "\\boxed", "\\fbox{", "{", "}", "}}", "\\boxed 5", "$", "$$", "**", "Answer:", "answer is", "the answer is ",
    "final answer", "####", "=", " = ", "+", "-", "*", "/", "x", "×", "÷", "·", "\\times", "\\cdot", "\\div", "\\frac{1}{2}",
    "0", "1", "-1", "7", "32", "1,000", "32.0", "32.5", "2/3", "-12", "٣", "9" * 5000, "1" + "0" * 4400, " ", "\n", "\n\n",
    "\n \t\n", "\t", "\r\n", "Step 1:", "Step 2.", "step 3)", "Schritt 4:", "> Step 5:", "## Step 6:", "</think>", "<think>",
    "Start with 7.", "Add 5.", "Multiply by 3.", "\u2028", "\x00", "é", "😀",
    # the over-long number where each parser reads a number (these crashed before; rare by chance alone)
    "\\boxed{" + "9" * 5000 + "}", "Answer: " + "9" * 5000, "9" * 5000 + " + 1 = 2", "3 * 2 = " + "0" * 4400 + "6",
]
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

model_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=6)), max_size=30).map("".join),
)


@examples()
@given(model_text)
def test_arith_answer_extraction_returns_an_int_or_none(text):
    answer = arith.extract_answer(text)
    assert answer is None or (isinstance(answer, int) and not isinstance(answer, bool))
    for a, op, b, c in arith.parse_equations(text):
        assert all(isinstance(x, int) for x in (a, b, c)) and op in "+-*/"


@examples()
@given(model_text, st.lists(st.sampled_from(verify.EXTRACTIONS), min_size=1, max_size=3))
def test_math_answer_extraction_returns_text_or_none(text, methods):
    answer, method = verify.extract_answer(text, tuple(methods))
    assert (answer is None and method is None) or (isinstance(answer, str) and answer and method in methods)
    boxed = verify.last_boxed(text)
    assert boxed is None or (isinstance(boxed, str) and boxed == boxed.strip() and boxed)
    assert isinstance(verify.gold_answer(text), str)


def test_math_answer_extraction_rejects_an_unknown_method_as_documented():
    with pytest.raises(ValueError, match="unknown answer extraction"):
        verify.extract_answer("Answer: 3", ("guess",))


@examples()
@given(st.one_of(st.none(), model_text), st.integers(0, 40))
def test_judge_reply_parser_returns_a_verdict_naming_a_step_or_invalid(text, n_steps):
    v = parse_verdict(text, n_steps)
    assert isinstance(v, Verdict) and v.n_steps == n_steps and v.raw == text
    if v.ok:
        assert -1 <= v.first_error < n_steps
        assert len(boxed_contents(text.rsplit("</think>", 1)[-1])) == 1
    else:
        assert v.status == "invalid" and v.first_error == -1


@examples()
@given(st.lists(st.tuples(st.one_of(st.none(), model_text), st.sampled_from(STATUSES)), min_size=1, max_size=5),
       st.integers(0, 12))
def test_judge_votes_over_sampled_replies_give_one_verdict(replies, n_steps):
    verdicts = [reply_verdict(Reply(t, s, detail="why"), n_steps) for t, s in replies]
    v = vote(verdicts, n_steps)
    assert isinstance(v, Verdict) and v.status in STATUSES and v.n_steps == n_steps
    assert not v.ok or -1 <= v.first_error < n_steps


@examples()
@given(st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.one_of(st.dictionaries(st.sampled_from(["message", "index"]), json_values, max_size=2),
                       st.builds(lambda c: {"message": {"content": c}}, st.one_of(st.none(), model_text, json_values))),
             max_size=3).map(lambda cs: json.dumps({"choices": cs}).encode()),
))
def test_http_reply_bodies_become_replies_or_an_error_reply(body):
    replies = _parse_body(httpx.Response(200, content=body))
    assert replies and all(isinstance(r, Reply) for r in replies)
    assert all((r.status == "ok" and isinstance(r.text, str)) or (r.status == "error" and r.text is None) for r in replies)


def _squash(text: str) -> str:
    return "".join(text.split())


@examples()
@given(model_text, st.sampled_from(SPLIT_MODES), st.one_of(st.none(), st.integers(1, 8)))
def test_step_splitting_loses_no_text_and_keeps_at_most_max_steps(text, mode, max_steps):
    steps = split_steps(text, mode, max_steps)
    assert all(isinstance(s, str) and s and s == s.strip() for s in steps)
    assert _squash("".join(steps)) == _squash(text)  # the module's promise: nothing lost but whitespace
    if max_steps is not None:
        assert len(steps) <= max_steps
        assert len(steps) == min(max_steps, len(split_steps(text, mode)))


@examples()
@given(st.lists(model_text, max_size=12), st.integers(-3, 15))
def test_merging_steps_keeps_their_order_and_count_or_refuses_a_bad_limit(steps, max_steps):
    if max_steps < 1:
        with pytest.raises(ValueError, match="max_steps must be >= 1"):
            merge_steps(steps, max_steps)
        return
    merged = merge_steps(steps, max_steps)
    assert len(merged) == min(len(steps), max_steps)
    assert "\n".join(merged) == "\n".join(steps)


@examples()
@given(model_text, st.text(max_size=12))
def test_step_splitting_refuses_an_unknown_mode_as_documented(text, mode):
    if mode in SPLIT_MODES:
        split_steps(text, mode)
    else:
        with pytest.raises(ValueError, match="unknown step split mode"):
            split_steps(text, mode)


# -- rollouts files -------------------------------------------------------------------------------

G = 2
HEADER = {"model": "fuzz", "task": "arith", "group_size": G, "temperature": 1.0}



def _valid_file(path: Path) -> list[bytes]:
    records = [
        RolloutRecord(group=g, sample=j, problem_id=f"p{g}", problem="Start with 1. Add 2.", reference="1 + 2 = 3", answer="3",
                      prompt="Start with 1. Add 2.\n", response="1 + 2 = 3\nAnswer: 3", prompt_ids=[4, 5], response_ids=[6, 7, 8],
                      logprobs=[-0.5, -1.0, -2.0], outcome=float(j == 0), verdict=Verdict(1, 2) if j else None)
        for g in range(2) for j in range(G)
    ]
    with RolloutsWriter(path, HEADER, overwrite=True) as w:
        for g in range(2):
            w.write_group(records[g * G : (g + 1) * G])
    return path.read_bytes().split(b"\n")


FIELDS = ["group", "sample", "problem_id", "problem", "reference", "answer", "prompt", "response", "prompt_ids",
          "response_ids", "logprobs", "outcome", "verdict", "format", "version", "group_size", "temperature",
          "prompt_width", "response_width", "tokenizer"]

mutations = st.one_of(
    st.tuples(st.just("field"), st.integers(0, 5), st.sampled_from(FIELDS), json_values),
    st.tuples(st.just("verdict"), st.integers(1, 4), st.integers(-3, 5), st.integers(-2, 5), st.sampled_from([*STATUSES, "x"])),
    st.tuples(st.just("line"), st.integers(0, 5), st.one_of(
        st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode()),
        st.just(b'{"group": ' + b"9" * 5000 + b"}"), st.just(b'{"group": 0, "sample": 1, "logprobs": [' + b"1" * 400 + b"]}"))),
    st.tuples(st.just("cut"), st.integers(0, 2000)),
    st.tuples(st.just("bytes"), st.binary(max_size=300)),
    st.tuples(st.just("drop"), st.integers(0, 5)),
)


def _mutate(lines: list[bytes], m: tuple) -> bytes:
    kind = m[0]
    if kind == "bytes":
        return m[1]
    if kind == "cut":
        data = b"\n".join(lines)
        return data[: m[1] % (len(data) + 1)]
    lines = list(lines)
    i = m[1] % len(lines)
    if kind == "drop":
        del lines[i]
    elif kind == "line":
        lines[i] = m[2]
    else:
        try:
            obj = json.loads(lines[i])
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            obj = {}
        if kind == "field":
            obj[m[2]] = m[3]
        else:
            obj["verdict"] = {"first_error": m[2], "n_steps": m[3], "status": m[4]}
        lines[i] = json.dumps(obj).encode()
    return b"\n".join(lines)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@examples(0.5)
@given(st.lists(mutations, min_size=1, max_size=3))
def test_rollouts_reader_reads_or_names_the_problem(scratch, changes):
    path = scratch / "r.jsonl"
    lines = _valid_file(path)
    data = b"\n".join(lines)
    for m in changes:
        data = _mutate(data.split(b"\n"), m)
    path.write_bytes(data)
    try:
        rf = read_rollouts(path, log=lambda _: None)
    except RolloutsError as e:
        assert str(e).startswith(str(path)), str(e)
        return
    # What was read is usable as documented.
    assert all(len(g) == rf.group_size for g in rf.groups)
    for r in rf.records():
        assert r.outcome in (0.0, 1.0) and len(r.logprobs) == len(r.response_ids) > 0
        assert r.verdict is None or (r.verdict.status in STATUSES and -1 <= r.verdict.first_error and
                                     (r.verdict.first_error == -1 or r.verdict.first_error < r.verdict.n_steps))


# -- problem files --------------------------------------------------------------------------------

row_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), model_text, st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2))
rows = st.lists(
    st.dictionaries(st.sampled_from(["problem", "answer", "solution", "id", "question", "x"]), row_values, max_size=5),
    min_size=1, max_size=4,
)


def _check_problems(problems, n_rows):
    assert len(problems) == n_rows
    for p in problems:
        assert p.question and p.answer and isinstance(p.reference, str) and isinstance(p.id, str)


@examples()
@given(rows, st.booleans())
def test_problem_rows_become_problems_or_a_named_error(rows, with_reference):
    fields = Fields(reference="solution" if with_reference else None)
    try:
        problems = _convert("f.jsonl", [(f"f.jsonl:{i + 1}", row) for i, row in enumerate(rows)], fields)
    except ProblemFileError as e:
        assert str(e).startswith("f.jsonl:"), str(e)
        return
    _check_problems(problems, len(rows))


@examples(0.1)
@given(st.one_of(rows.map(lambda rs: "\n".join(json.dumps(r) for r in rs).encode()), st.binary(max_size=80),
                 st.lists(json_values, max_size=3).map(lambda vs: "\n".join(json.dumps(v) for v in vs).encode())),
       st.sampled_from([".jsonl", ".json"]))
def test_problem_files_read_end_to_end_or_a_named_error(scratch, data, suffix):
    path = scratch / f"problems{suffix}"
    path.write_bytes(data)
    try:
        problems = read_problems(path, Fields(reference=None))
    except ProblemFileError as e:
        assert str(e).startswith(str(path)), str(e)
        return
    assert problems and all(p.question and p.answer for p in problems)


# -- key=value overrides --------------------------------------------------------------------------


def _keys(model=Config, prefix="") -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        out.append(prefix + name)
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            out.extend(_keys(f.annotation, prefix + name + "."))
    return out


KEYS = _keys() + ["trainer.steps", "trainer.seed", "nope", "train.nope", "", "train.", ".x", "a..b", "train.steps.x"]
VALUES = ["1", "0", "-1", "1e999", "nan", "inf", "true", "null", "~", "[1,2]", "{a: 1}", "[", "}", "${nope}", "${train.steps}",
          "${oc.env:SGPO_FUZZ_NOPE}", "${oc.env:HOME}", "${", "'", '"', "9" * 5000, "grpo", "sgpo", "dapo", "cpu", "tokens", ""]
overrides = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(KEYS), st.one_of(st.sampled_from(VALUES), st.text(max_size=12))).map("=".join),
        st.text(max_size=30),
    ),
    max_size=4,
)


@examples()
@given(overrides, st.booleans())
def test_overrides_give_a_config_or_a_config_error(items, from_file):
    path = Path(__file__).resolve().parents[1] / "configs" / "arith.yaml" if from_file else None
    try:
        cfg = load_config(path, items)
    except ConfigError:
        return
    assert isinstance(cfg, Config)


def test_an_unresolvable_interpolation_is_a_config_error():
    # Used to escape as omegaconf's InterpolationKeyError / InterpolationResolutionError (found by the fuzz test).
    for item in ("train.out_dir=${nope}", "train.steps=${oc.env:SGPO_FUZZ_NOPE}"):
        with pytest.raises(ConfigError, match="cannot resolve the configuration"):
            load_config(None, [item])


def test_numbers_too_long_for_int_are_no_answer_and_no_index():
    # Python refuses int() of more than 4300 digits; these used to raise ValueError (found by fuzzing).
    big = "9" * 5000
    assert arith.extract_answer(f"Answer: {big}") is None
    assert arith.parse_equations(f"{big} + 1 = 2\n1 + 1 = 2") == [(1, "+", 1, 2)]
    assert parse_verdict("\\boxed{%s}" % big, 3).status == "invalid"
    assert parse_verdict("\\boxed{%s1}" % ("0" * 5000), 3).status == "invalid"


def test_too_long_numbers_and_bad_bytes_in_problem_files_are_named(tmp_path):
    big = "9" * 5000
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"problem": "a", "answer": 1}\n{"problem": "b", "answer": %s}\n' % big)
    with pytest.raises(ProblemFileError, match=r"p\.jsonl:2: not valid JSON"):
        read_problems(bad, Fields(reference=None))
    bad.write_bytes(b'{"problem": "a\xff", "answer": 1}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:1: not UTF-8"):
        read_problems(bad, Fields(reference=None))


# -- the rule judge reads a start number int() refuses as a wrong start ---------------------------


def test_rule_judge_gives_a_verdict_for_a_start_with_a_number_too_long_for_int():
    from sgpo.judges.base import JudgeRequest
    from sgpo.tasks.arith import ArithTask

    problem = ArithTask().problems("train", 1)[0]
    steps = ["Start with " + "9" * 5000 + "."]
    (v,) = ArithTask().rule_judge().judge([JudgeRequest(problem.question, steps, problem.reference, problem.answer)])
    assert v.ok and v.first_error == 0

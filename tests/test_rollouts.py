"""The rollouts file format: round trip, a write cut short, and bad records named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from testkit import HEADER, G, group, make_record, write_file

from sgpo.judges import Verdict
from sgpo.models.policies import arith_tokenizer
from sgpo.rollouts.file import RolloutRecord, RolloutsError, read_rollouts, tokenizer_fingerprint
from sgpo.rollouts.writer import RolloutsWriter
from sgpo.sampling.rollout import on_responses, unpack
from sgpo.train.batches import check_compatible, pack


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_round_trip_keeps_every_field(tmp_path):
    groups = [group(0, (1, 0, 0, 1), (None, Verdict(1, 3), Verdict(-1, 2, "ok"), None)),
              group(1, verdicts=(Verdict.failed(2, "timeout"),) * G)]
    path = write_file(tmp_path / "r.jsonl", groups)
    rf = read_rollouts(path)
    assert rf.header["format"] == "sgpo-rollouts" and rf.header["version"] == 1 and rf.header["model"] == "hand-made"
    assert rf.groups == groups  # line numbers are not compared
    assert [r.line for r in rf.groups[1]] == [6, 7, 8, 9]
    assert rf.skipped_lines == rf.dropped_groups == 0 and not rf.warnings
    assert rf.groups[1][2].verdict == Verdict(-1, 2, "timeout")


def test_reader_orders_samples_within_a_group(tmp_path):
    path = tmp_path / "r.jsonl"
    recs = group(0)
    path.write_text("\n".join(json.dumps(x) for x in [{"format": "sgpo-rollouts", "version": 1, **HEADER},
                                                      *(r.to_json() for r in reversed(recs))]) + "\n")
    assert [r.sample for r in read_rollouts(path).groups[0]] == [0, 1, 2, 3]


def test_pack_lays_out_like_generate_and_unpack_inverts_it():
    recs = [make_record(0, 0, response_ids=[7]), make_record(0, 1, response_ids=[7, 8, 9], prompt_ids=[1, 2, 3, 4, 5])]
    rollout, logp = pack(recs, pad_id=0)
    assert rollout.input_ids.tolist() == [[0, 0, 4, 20, 5, 7, 0, 0], [1, 2, 3, 4, 5, 7, 8, 9]]
    assert rollout.attention_mask.tolist() == [[0, 0, 1, 1, 1, 1, 0, 0], [1] * 8]
    assert rollout.response_mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert logp.dtype == torch.float32 and logp[0].tolist() == [-0.5, 0.0, 0.0]
    assert unpack(rollout) == [(x.prompt_ids, x.response_ids) for x in recs]
    assert on_responses(rollout, logp) == [x.logprobs for x in recs]
    # A fixed prompt width pads every prompt the same way whatever else is in the batch.
    wide, _ = pack(recs[:1], pad_id=0, prompt_width=6)
    assert wide.input_ids.tolist() == [[0, 0, 0, 4, 20, 5, 7]] and unpack(wide) == [(recs[0].prompt_ids, [7])]
    with pytest.raises(ValueError, match="prompt_width=4"):
        pack(recs, pad_id=0, prompt_width=4)


def test_writer_refuses_to_overwrite_and_rejects_bad_records(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0)])
    with pytest.raises(FileExistsError, match="--overwrite"):
        RolloutsWriter(path, HEADER)
    with RolloutsWriter(tmp_path / "s.jsonl", HEADER) as w:
        bad = [make_record(0, j) for j in range(G)]
        bad[2] = RolloutRecord(**{**bad[2].__dict__, "logprobs": [-1.0] * 9})
        with pytest.raises(RolloutsError, match=r"s\.jsonl:4: field 'logprobs'"):
            w.write_group(bad)
    assert len(lines_of(tmp_path / "s.jsonl")) == 3  # header and the two records before the bad one


def _cut(path: Path, n_bytes_from_end: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - n_bytes_from_end])


def test_file_cut_mid_line_skips_the_record_and_drops_its_group(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0), group(1), group(2)])
    _cut(path, 40)  # inside the last record (line 13)
    seen = []
    rf = read_rollouts(path, log=seen.append)
    assert len(rf.groups) == 2 and [g[0].group for g in rf.groups] == [0, 1]
    assert rf.skipped_lines == 1 and rf.dropped_groups == 1 and rf.dropped_responses == G - 1
    assert seen == rf.warnings and len(seen) == 2
    assert f"{path}:13: incomplete last line" in seen[0]
    assert f"{path}: lines 10-12: group 2 has 3 of 4 responses" in seen[1]


def test_file_cut_inside_a_multibyte_character(tmp_path):
    recs = [make_record(0, j) for j in range(G)]
    recs[-1] = RolloutRecord(**{**recs[-1].__dict__, "response": "résumé → ✓"})
    path = write_file(tmp_path / "r.jsonl", [group(1), recs])
    data = path.read_bytes()
    cut = data.rindex("✓".encode()) + 1  # one byte into the three-byte check mark
    path.write_bytes(data[:cut])
    rf = read_rollouts(path, log=lambda m: None)
    assert rf.skipped_lines == 1 and rf.dropped_groups == 1 and len(rf.groups) == 1


def test_crash_between_records_drops_the_incomplete_group_without_skipping_lines(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0), group(1)])
    path.write_text("\n".join(lines_of(path)[:-2]) + "\n")
    rf = read_rollouts(path, log=lambda m: None)
    assert rf.skipped_lines == 0 and rf.dropped_groups == 1 and rf.dropped_responses == 2 and len(rf.groups) == 1


def test_truncated_header_and_missing_file_are_errors(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0)])
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(RolloutsError, match=r"r\.jsonl:1: the header line is incomplete"):
        read_rollouts(path)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_rollouts(tmp_path / "nope.jsonl")
    (tmp_path / "plain.jsonl").write_text('{"problem": "x"}\n')
    with pytest.raises(RolloutsError, match=r"plain\.jsonl:1: not a rollouts file"):
        read_rollouts(tmp_path / "plain.jsonl")


def test_a_malformed_line_that_is_not_the_last_is_an_error(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0), group(1)])
    lines = lines_of(path)
    lines[3] = lines[3][:50]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RolloutsError, match=r"r\.jsonl:4: not valid JSON"):
        read_rollouts(path)


def test_an_incomplete_group_before_the_end_is_an_error(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0), group(1)])
    lines = lines_of(path)
    del lines[2]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RolloutsError, match=r"r\.jsonl:2: field 'group': group 0 has 3 of 4 responses .* not the last group"):
        read_rollouts(path)


def read_error_after(tmp_path, line: int, change: dict) -> tuple[Path, str]:
    """The reader's error for a two-group file whose line ``line`` has ``change`` merged in."""
    path = write_file(tmp_path / "r.jsonl", [group(0), group(1)])
    lines = lines_of(path)
    lines[line - 1] = json.dumps({**json.loads(lines[line - 1]), **change})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RolloutsError) as err:
        read_rollouts(path)
    return path, str(err.value)


@pytest.mark.parametrize(
    "line, change, field",
    [
        (3, {"logprobs": [-1.0]}, "logprobs"),
        (3, {"logprobs": [0.5, -1.0]}, "logprobs"),
        (4, {"outcome": 2}, "outcome"),
        (4, {"outcome": None}, "outcome"),
        (2, {"response_ids": ["a"]}, "response_ids"),
        (2, {"response_ids": []}, "response_ids"),
        (5, {"verdict": {"first_error": 0, "n_steps": 2, "status": "maybe"}}, "verdict.status"),
        (5, {"verdict": {"first_error": -2, "n_steps": 2, "status": "ok"}}, "verdict.first_error"),
        (5, {"verdict": [1, 2]}, "verdict"),
        (3, {"sample": 4}, "sample"),
        (3, {"sample": 0}, "sample"),
        (4, {"problem_id": "other"}, "problem_id"),
        (4, {"prompt_ids": [9, 9]}, "prompt_ids"),
        (2, {"prompt": None}, "prompt"),
        (2, {"group": -1}, "group"),
    ],
)
def test_bad_record_names_file_line_and_field(tmp_path, line, change, field):
    path, error = read_error_after(tmp_path, line, change)
    assert error.startswith(f"{path}:{line}: field '{field}'"), error


@pytest.mark.parametrize(
    "change, field",
    [({"group_size": 1}, "group_size"), ({"temperature": 0}, "temperature"), ({"version": 2}, "version"),
     ({"tokenizer": "llama"}, "tokenizer"), ({"prompt_width": 0}, "prompt_width")],
)
def test_bad_header_names_the_field(tmp_path, change, field):
    path = write_file(tmp_path / "r.jsonl", [group(0)])
    lines = lines_of(path)
    lines[0] = json.dumps({**json.loads(lines[0]), **change})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RolloutsError, match=rf"r\.jsonl:1: field '{field}'"):
        read_rollouts(path)


def test_a_prompt_wider_than_the_headers_prompt_width_is_named(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0)], {**HEADER, "prompt_width": 3})
    lines = lines_of(path)
    lines[2] = json.dumps({**json.loads(lines[2]), "prompt_ids": [1, 2, 3, 4]})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RolloutsError, match=r"r\.jsonl:3: field 'prompt_ids': has 4 tokens, more than the header's prompt_width 3"):
        read_rollouts(path)


def _tokenized_file(tmp_path: Path, tokenizer, header_extra: dict | None = None) -> Path:
    prompt = "Start with 3. Add 2.\n"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    recs = [RolloutRecord(0, j, "p0", "Start with 3. Add 2.", None, "5", prompt, "3 + 2 = 5", ids,
                          tokenizer("3 + 2 = 5", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
                          [-0.1] * 6, 1.0, None) for j in range(G)]
    header = {**HEADER, "tokenizer": tokenizer_fingerprint(tokenizer), **(header_extra or {})}
    return write_file(tmp_path / "t.jsonl", [recs], header)


def test_check_compatible_names_what_does_not_match(tmp_path):
    tok = arith_tokenizer()
    path = _tokenized_file(tmp_path, tok)
    rf = read_rollouts(path)
    check_compatible(rf, tok, G, 1.0)  # the file's own settings pass
    with pytest.raises(RolloutsError, match=r"t\.jsonl:1: field 'group_size': is 4 but rollout.group_size=8"):
        check_compatible(rf, tok, 8, 1.0)
    with pytest.raises(RolloutsError, match=r"t\.jsonl:1: field 'temperature'.*rollout.temperature=1.0"):
        check_compatible(read_rollouts(_tokenized_file(tmp_path / "x", tok, {"temperature": 0.7})), tok, G, 1.0)
    other = arith_tokenizer()
    other.add_tokens(["<extra>"])
    with pytest.raises(RolloutsError, match=r"t\.jsonl:1: field 'tokenizer'"):
        check_compatible(rf, other, G, 1.0)
    # Without a fingerprint in the header the records themselves are checked.
    lines = lines_of(path)
    head = json.loads(lines[0])
    head["tokenizer"] = None
    rec = json.loads(lines[3])
    rec["response_ids"][0] = 500
    (tmp_path / "u.jsonl").write_text("\n".join([json.dumps(head), *lines[1:3], json.dumps(rec), *lines[4:]]) + "\n")
    with pytest.raises(RolloutsError, match=r"u\.jsonl:4: field 'response_ids': token id 500 is outside"):
        check_compatible(read_rollouts(tmp_path / "u.jsonl"), tok, G, 1.0)
    shifted = [json.dumps(head)] + [json.dumps({**json.loads(x), "prompt_ids": [4, 4]}) for x in lines[1:]]
    (tmp_path / "v.jsonl").write_text("\n".join(shifted) + "\n")
    with pytest.raises(RolloutsError, match=r"v\.jsonl:2: field 'prompt_ids': is not what the configured tokenizer"):
        check_compatible(read_rollouts(tmp_path / "v.jsonl"), tok, G, 1.0)


# -- issue 12: one meaning of "wrong", and verdicts that name a step ------------------------------


@pytest.mark.parametrize(
    "line, change, field, says",
    [
        (4, {"outcome": 0.5}, "outcome", "must be 0 (wrong) or 1 (correct), got 0.5"),
        (4, {"outcome": 0.999}, "outcome", "got 0.999"),
        (4, {"outcome": True}, "outcome", "got True"),
        (5, {"verdict": {"first_error": 7, "n_steps": 2, "status": "ok"}}, "verdict.first_error", "is 7 but the verdict has n_steps=2"),
        (5, {"verdict": {"first_error": 2, "n_steps": 2, "status": "ok"}}, "verdict.first_error", "is 2 but the verdict has n_steps=2"),
        (5, {"verdict": {"first_error": 0, "n_steps": 0, "status": "ok"}}, "verdict.first_error", "n_steps=0"),
        (5, {"verdict": {"first_error": 3, "n_steps": 1, "status": "timeout"}}, "verdict.first_error", "n_steps=1"),
        (5, {"verdict": {"first_error": -3, "n_steps": 2, "status": "ok"}}, "verdict.first_error", "must be an integer >= -1"),
        (5, {"verdict": {"first_error": -1, "n_steps": -1, "status": "ok"}}, "verdict.n_steps", "must be an integer >= 0"),
    ],
)
def test_outcomes_other_than_0_or_1_and_out_of_range_verdicts_are_rejected(tmp_path, line, change, field, says):
    path, error = read_error_after(tmp_path, line, change)
    assert error.startswith(f"{path}:{line}: field '{field}': "), error
    assert says in error


def test_outcomes_0_and_1_as_int_or_float_and_in_range_verdicts_are_read(tmp_path):
    path = write_file(tmp_path / "r.jsonl", [group(0, (1, 0, 0, 1), (None, Verdict(1, 2), Verdict(-1, 2), Verdict(-1, 0, "invalid")))])
    lines = lines_of(path)
    lines[1] = json.dumps({**json.loads(lines[1]), "outcome": 1})  # an int is fine
    path.write_text("\n".join(lines) + "\n")
    rf = read_rollouts(path)
    assert [r.outcome for r in rf.groups[0]] == [1.0, 0.0, 0.0, 1.0]
    assert [r.verdict for r in rf.groups[0]] == [None, Verdict(1, 2), Verdict(-1, 2), Verdict(-1, 0, "invalid")]


def test_writer_stores_a_judges_out_of_range_ok_verdict_as_invalid(tmp_path):
    # A judge may say "ok, step 7" about a 2-step response; grading counts that as a failure, and the
    # file keeps it as one (the reader would refuse the raw index), so `sgpo rollout` does not stop.
    path = write_file(tmp_path / "r.jsonl", [group(0, verdicts=(Verdict(7, 2, "ok", raw="7"), Verdict(1, 2), None, None))])
    rf = read_rollouts(path)
    assert rf.groups[0][0].verdict == Verdict(-1, 2, "invalid")
    assert rf.groups[0][1].verdict == Verdict(1, 2)

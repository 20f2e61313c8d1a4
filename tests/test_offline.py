"""`sgpo rollout` and offline training on its file, end to end on a tiny model (CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from testkit import assert_resume_is_exact, sgpo_cli, tiny_overrides

from sgpo.grading import NO_STEPS, ask_judge
from sgpo.judges import Verdict
from sgpo.judges.base import JudgeRequest
from sgpo.rollouts.file import read_rollouts
from sgpo.sampling.rollout import token_logprobs
from sgpo.train.batches import pack
from sgpo.train.checkpoint import load_trainer_state
from sgpo.train.config import ConfigError, load_config
from sgpo.train.metrics import read_jsonl
from sgpo.train.runtime import autocast
from sgpo.train.trainer import Trainer

N_PROBLEMS, G = 8, 4


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A directory with a warm-up cache, shared by the tests of this module."""
    return tmp_path_factory.mktemp("offline")


#: Numbers up to 30 are one or two tokens, so prompts differ in length and batches pad them.
VARIED = ["task.start_max=30", "task.operand_max=20", "task.value_max=60"]


def overrides(base: Path, *extra: str) -> list[str]:
    return tiny_overrides(base, *VARIED, *extra)


@pytest.fixture(scope="module")
def rollouts(base) -> Path:
    """A judged rollouts file written by `sgpo rollout` (bf16 log-probs, as the trainer's default)."""
    out = base / "rollouts.jsonl"
    proc = sgpo_cli("rollout", "--out", str(out), "--judge", "--problems", str(N_PROBLEMS), *overrides(base))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {N_PROBLEMS} groups x {G} responses" in proc.stdout
    return out


@pytest.mark.slow
def test_rollout_refuses_to_replace_a_file_and_names_bad_requests(rollouts, base):
    before = rollouts.read_bytes()
    proc = sgpo_cli("rollout", "--out", str(rollouts), *overrides(base))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert rollouts.read_bytes() == before
    # A task with a handful of distinct problems cannot give 50 (it fails before any warm-up).
    small = ["task.start_max=1", "task.operand_max=1", "task.n_ops=1"]
    proc = sgpo_cli("rollout", "--out", str(base / "x.jsonl"), "--problems", "50", *overrides(base), *small)
    assert proc.returncode == 2 and "--problems 50" in proc.stderr and "Traceback" not in proc.stderr


def _trainer(base: Path, run: Path, *extra: str) -> Trainer:
    return Trainer(load_config(None, overrides(base, *extra)), run, log=lambda *a: None)


@pytest.mark.slow
def test_rollout_writes_a_valid_judged_file(rollouts, base):
    rf = read_rollouts(rollouts)
    h = rf.header
    assert (h["group_size"], h["temperature"], h["max_new_tokens"], h["logprob_precision"]) == (G, 1.0, 24, "bf16")
    assert h["judge"] == "rule" and h["judge_scope"] == "all_negative" and h["tokenizer"]["vocab_size"] > 0
    assert len(rf.groups) == N_PROBLEMS and rf.skipped_lines == 0
    assert len({g[0].problem_id for g in rf.groups}) == N_PROBLEMS
    for g in rf.groups:
        all_negative = all(r.outcome == 0.0 for r in g)
        for r in g:
            assert len(r.logprobs) == len(r.response_ids) and all(lp <= 0 for lp in r.logprobs)
            # Judged exactly when in scope: the wrong responses of all-negative groups.
            assert (r.verdict is not None) == all_negative
            if r.verdict is not None and not r.response.strip():
                assert r.verdict.status == "invalid"


@pytest.mark.slow
def test_stored_logprobs_equal_the_trainers_at_step_one(rollouts, base, tmp_path):
    """Importance ratios start at exactly 1: behaviour log-probs are recomputed bit for bit.

    The file's log-probs were taken under bf16 autocast, as the trainer takes its own, with every
    sequence laid out as prompt_width + response_width columns; the same policy recomputes them
    in batches of other groups to within 1e-6. Both choices matter: recomputing in float32, or
    with other padding, moves the log-probs by far more.
    """
    rf = read_rollouts(rollouts)
    assert len({len(g[0].prompt_ids) for g in rf.groups}) > 1  # prompts of several lengths: padding is exercised
    P, T = rf.header["prompt_width"], rf.header["response_width"]
    trainer = _trainer(base, tmp_path / "run", "train.mode=offline", f"data.rollouts={rollouts}")
    worst = {"same": 0.0, "fp32": 0.0, "other padding": 0.0}
    # Each group alone (its prompt may be shorter than the batch's longest), then the stream's pairs.
    batches = [trainer.offline.take([g]) for g in range(N_PROBLEMS)]
    batches += [trainer._next_batch(2) for _ in range(N_PROBLEMS // 2)]
    for batch in batches:
        mask = batch.rollout.response_mask.bool()
        assert batch.rollout.input_ids.shape[1] == P + T
        records = [r for p in batch.problems for g in rf.groups if g[0].problem_id == p.id for r in g]
        with torch.no_grad(), autocast(trainer.device, True):
            same, _ = token_logprobs(trainer.policy, batch.rollout, 1.0)
            for extra in (1, 3, 5):
                other, _ = token_logprobs(trainer.policy, pack(records, trainer.tokenizer.pad_token_id, P + extra, T + extra)[0], 1.0)
                worst["other padding"] = max(worst["other padding"], (other[:, :T] - batch.behaviour_logp)[mask].abs().max().item())
        with torch.no_grad():
            fp32, _ = token_logprobs(trainer.policy, batch.rollout, 1.0)
        worst["same"] = max(worst["same"], (torch.exp(same - batch.behaviour_logp)[mask] - 1).abs().max().item())
        worst["fp32"] = max(worst["fp32"], (fp32 - batch.behaviour_logp)[mask].abs().max().item())
    assert worst["same"] <= 1e-6, worst
    assert worst["fp32"] > 1e-4 and worst["other padding"] > 1e-5, worst


@pytest.mark.slow
def test_offline_training_runs_and_starts_on_policy(rollouts, base, tmp_path):
    run = tmp_path / "run"
    proc = sgpo_cli("train", *overrides(base, "trainer.mode=offline", f"data.rollouts={rollouts}", "train.steps=3",
                                        f"train.out_dir={run}"))
    assert proc.returncode == 0, proc.stderr
    start, *metrics = read_jsonl(run / "metrics.jsonl")
    assert start["step"] == 0 and "eval/accuracy" in start  # evaluated before the first update
    assert [m["step"] for m in metrics] == [1, 2, 3]
    # Until the first update with signal the policy is the behaviour policy: ratios are 1.
    assert metrics[0]["offline/logp_gap_max"] <= 1e-6 and metrics[0]["clip_frac"] == 0.0
    # Every verdict SGPO needs is in the file: the judge is never asked.
    assert all(m["sgpo/judge_calls_total"] == 0 for m in metrics)
    assert "eval/accuracy" in metrics[-1]
    state = load_trainer_state(run / "checkpoints" / "step_3")
    assert state["data_position"] == 3 * 2
    assert state["rollouts_sha256"] == read_rollouts(rollouts).sha256
    # Samples come from the file, in the stream's order.
    stored = {r.response for r in read_rollouts(rollouts).records()}
    assert {s["completion"] for s in read_jsonl(run / "samples.jsonl")} <= stored


@pytest.mark.slow
def test_offline_epochs_cycle_through_the_file(rollouts, base, tmp_path):
    trainer = _trainer(base, tmp_path / "run", "train.mode=offline", f"data.rollouts={rollouts}")
    seen = [p.id for _ in range(2 * N_PROBLEMS // 2) for p in trainer._next_batch(2).problems]
    ids = {g[0].problem_id for g in read_rollouts(rollouts).groups}
    assert set(seen[:N_PROBLEMS]) == ids and set(seen[N_PROBLEMS:]) == ids  # each epoch sees every group once


@pytest.mark.slow
def test_offline_resume_after_sigkill_is_exact(rollouts, base, tmp_path):
    common = overrides(base, "trainer.mode=offline", f"data.rollouts={rollouts}", "train.steps=8", "train.save_every=2",
                       "train.eval_every=1")
    a, b = assert_resume_is_exact(common, tmp_path, checkpoint_step=2, last_step=8)
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert a["data_position"] == b["data_position"] == 16
    from safetensors.torch import load_file

    wa, wb = load_file(full / "checkpoints" / "step_8" / "model.safetensors"), load_file(killed / "checkpoints" / "step_8" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_resume_refuses_a_changed_rollouts_file(rollouts, base, tmp_path):
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(rollouts.read_bytes())
    run = tmp_path / "run"
    assert sgpo_cli("train", *overrides(base, "trainer.mode=offline", f"data.rollouts={copy}", "train.steps=1",
                                        f"train.out_dir={run}")).returncode == 0
    lines = copy.read_text().splitlines()
    copy.write_text("\n".join(lines[:-G]) + "\n")  # one group fewer
    proc = sgpo_cli("train", "--resume", str(run))
    assert proc.returncode == 2 and "has changed since" in proc.stderr and "Traceback" not in proc.stderr


def _rewrite(src: Path, dst: Path, edit) -> Path:
    lines = src.read_text().splitlines()
    out = [lines[0]] + [json.dumps(edit(json.loads(x))) for x in lines[1:]]
    dst.write_text("\n".join(out) + "\n")
    return dst


@pytest.mark.slow
def test_empty_responses_are_failed_verdicts_not_crashes(rollouts, base, tmp_path):
    """Every other response emptied and unjudged: the configured judge is asked about the rest,
    the empty ones become counted failures (plain GRPO), and training goes on."""
    eos = read_rollouts(rollouts).groups[0][0].response_ids[-1]  # any id in the vocabulary will do

    def edit(r):
        r["verdict"] = None
        if r["sample"] % 2 == 0:
            r.update(response="", response_ids=[eos], logprobs=[-0.5], outcome=0.0)
        return r

    path = _rewrite(rollouts, tmp_path / "empty.jsonl", edit)
    trainer = _trainer(base, tmp_path / "run", "train.mode=offline", f"data.rollouts={path}", "algorithm.scope=all_incorrect",
                       "train.log_samples=8")
    assert trainer.judge is not None  # verdicts are missing, so the configured judge is built
    for _ in range(2):
        m = trainer.step()
        wrong = round((1 - m["accuracy/train"]) * 8)
        assert m["sgpo/judged_responses"] == wrong
        assert m["sgpo/judge_failures"] >= 4  # the four empty responses, at least
    assert trainer.judge_calls <= 2 * 4  # empty responses never reach the judge
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    empty = [s for s in samples if s["completion"] == ""]
    assert len(empty) == 8
    assert all(s["verdict"]["status"] == "invalid" and s["reward"] == 0.0 for s in empty)


def test_ask_judge_never_sends_empty_steps():
    class StrictJudge:
        def judge(self, requests):
            assert all(r.steps for r in requests), "a request without steps reached the judge"
            return [Verdict(0, len(r.steps)) for r in requests]

    reqs = [JudgeRequest("q", []), JudgeRequest("q", ["1 + 1 = 2"]), JudgeRequest("q", [])]
    out = ask_judge(StrictJudge(), reqs)
    assert [v.status for v in out] == ["invalid", "ok", "invalid"] and out[0].raw == NO_STEPS


@pytest.mark.slow
def test_offline_judges_missing_verdicts_with_the_configured_judge(rollouts, base, tmp_path):
    path = _rewrite(rollouts, tmp_path / "bare.jsonl", lambda r: {**r, "verdict": None})
    trainer = _trainer(base, tmp_path / "run", "train.mode=offline", f"data.rollouts={path}")
    m = trainer.step()
    assert trainer.judge_calls > 0 and m["sgpo/judge_calls_total"] == trainer.judge_calls
    # The same groups with stored verdicts give the same rewards without asking the judge.
    stored = _trainer(base, tmp_path / "run2", "train.mode=offline", f"data.rollouts={rollouts}")
    m2 = stored.step()
    assert stored.judge is None and m2["reward/mean"] == pytest.approx(m["reward/mean"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, words",
    [
        (["trainer.mode=offline"], ["train.mode=offline needs a rollouts file", "data.rollouts"]),
        (["trainer.mode=offline", "data.rollouts=/nonexistent/r.jsonl"], ["/nonexistent/r.jsonl"]),
        (["trainer.mode=offline", "data.rollouts={rollouts}", "rollout.group_size=8"], ["{rollouts}:1: field 'group_size'"]),
        (["trainer.mode=offline", "data.rollouts={rollouts}", "rollout.temperature=0.7"], ["{rollouts}:1: field 'temperature'"]),
        (["trainer.mode=offline", "data.rollouts={rollouts}", "algorithm.rts_unit=tokens", "judge.max_steps=1"],
         ["field 'verdict.n_steps'", "judge.max_steps=1"]),
    ],
)
def test_offline_validation_fails_before_training(rollouts, base, tmp_path, extra, words):
    run = tmp_path / "run"
    extra = [e.format(rollouts=rollouts) for e in extra]
    proc = sgpo_cli("train", *overrides(base, f"train.out_dir={run}", *extra))
    assert proc.returncode == 2, proc.stderr
    for w in [w.format(rollouts=rollouts) for w in words]:
        assert w in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (run / "metrics.jsonl").exists()


@pytest.mark.slow
def test_offline_rejects_a_file_from_another_tokenizer(rollouts, base, tmp_path):
    path = _rewrite(rollouts, tmp_path / "other.jsonl", lambda r: r)
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    head["tokenizer"]["fingerprint"] = "0000000000000000"
    path.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    with pytest.raises(ConfigError, match=rf"{path}:1: field 'tokenizer'"):
        _trainer(base, tmp_path / "run", "train.mode=offline", f"data.rollouts={path}")


@pytest.mark.slow
def test_offline_trains_on_a_file_cut_mid_line(rollouts, base, tmp_path):
    path = tmp_path / "cut.jsonl"
    data = rollouts.read_bytes()
    path.write_bytes(data[: len(data) - 25])
    logs = []
    trainer = Trainer(load_config(None, overrides(base, "train.mode=offline", f"data.rollouts={path}")), tmp_path / "run",
                      log=logs.append)
    assert len(trainer.offline) == N_PROBLEMS - 1
    assert any("incomplete last line" in m and f"{path}:" in m for m in logs)
    assert any("dropped" in m for m in logs)
    trainer.step()


@pytest.mark.slow
def test_stored_logprobs_are_the_old_logprobs_of_the_ratio(rollouts, base, tmp_path):
    """Shift every stored log-prob by -1: the ratios become e (clipped wherever A > 0) at step one."""
    shifted = _rewrite(rollouts, tmp_path / "shifted.jsonl", lambda r: {**r, "logprobs": [x - 1.0 for x in r["logprobs"]]})
    signal = ["algorithm.method=random", "algorithm.scope=all_incorrect"]  # every group has non-zero advantages
    true = _trainer(base, tmp_path / "a", "train.mode=offline", f"data.rollouts={rollouts}", *signal).step()
    moved = _trainer(base, tmp_path / "b", "train.mode=offline", f"data.rollouts={shifted}", *signal).step()
    assert true["clip_frac"] == 0.0 and true["offline/logp_gap_max"] <= 1e-6
    assert moved["offline/logp_gap_mean"] == pytest.approx(1.0, abs=1e-5)
    assert moved["clip_frac"] > 0.2 and moved["loss"] != pytest.approx(true["loss"])

"""SGPOTrainer inside TRL's real GRPOTrainer: tiny policy built in code, CPU, one and two processes."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sgpo.core import METHODS, ShapingParams, known_rewards
from sgpo.grading import GradingSettings, grade, in_scope
from sgpo.integrations.trl import TRL_EPS, SGPOConfig
from sgpo.judges.base import Verdict
from sgpo.tasks.base import Problem

sys.path.insert(0, str(Path(__file__).parent))
from trl_setup import G, TextJudge, outcome, trainer  # noqa: E402

SETTINGS = GradingSettings("sgpo", ShapingParams(eps=TRL_EPS), step_mode="line")
NO_PROBLEM = Problem("", "", None, None)  # TextJudge reads only the steps


def records(log_dir: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(log_dir.glob("judged_rank*.jsonl")) for line in f.read_text().splitlines()]


def native(texts: list[str], outcomes: list[float], settings: GradingSettings = SETTINGS):
    o = torch.tensor(outcomes).view(-1, G)
    return grade([NO_PROBLEM] * len(o), texts, o, settings, TextJudge())


def as_trl(g, outcomes: list[float], scope: str = "all_negative") -> list[float]:
    """The native rewards as TRL holds them: NaN (unscorable) where the reward is unknown (the failure rule of docs/metrics.md)."""
    known = known_rewards(torch.tensor(outcomes).view(-1, G), g.verdict_ok, scope)
    return torch.where(known, g.rewards, torch.nan).reshape(-1).tolist()


def test_single_process_grades_exactly_the_all_negative_groups(tmp_path):
    t = trainer(tmp_path / "run", judge_log=tmp_path / "judged", per_device=8, steps=3)
    t.train()
    logs = records(tmp_path / "judged")
    assert len(logs) == 3
    kinds_seen = set()
    for rec in logs:
        texts, outcomes = rec["completions"], rec["outcomes"]
        grouped = torch.tensor(outcomes).view(-1, G)
        kinds_seen |= {"all_negative" if g.max() == 0 else "other" for g in grouped}
        assert rec["judged_rows"] == in_scope(grouped, "all_negative")
        expected = native(texts, outcomes)
        assert rec["rewards"] == pytest.approx(as_trl(expected, outcomes), abs=1e-6, nan_ok=True)
        for i, (o, r) in enumerate(zip(outcomes, rec["rewards"])):
            if i not in rec["judged_rows"]:
                assert r == o  # mixed and all-positive groups keep 0/1
            else:
                assert math.isnan(r) or r < 1.0
    assert kinds_seen == {"all_negative", "other"}
    graded = {round(r, 6) for rec in logs for i, r in enumerate(rec["rewards"]) if i in rec["judged_rows"] and r > 0}
    assert len(graded) > 2, "too few distinct graded rewards: the test data do not exercise SGPO"
    hist = [h for h in t.state.log_history if "sgpo/outcome_accuracy" in h]
    assert len(hist) == 3
    for h, rec in zip(hist, logs):
        assert h["sgpo/outcome_accuracy"] == pytest.approx(sum(rec["outcomes"]) / len(rec["outcomes"]))
        assert h["rewards/correct/mean"] == pytest.approx(sum(rec["rewards"]) / len(rec["rewards"]), abs=1e-6)
        assert h["sgpo/judged_responses"] == len(rec["judged_rows"])
    assert t.sgpo_judge_calls == t.judge.calls > 0


def test_advantages_equal_the_native_grading_step(tmp_path):
    t = trainer(tmp_path / "run", per_device=16, steps=1)
    t.train()
    texts = list(t._logs["completion"])
    by_prompt = {r["prompt"]: r["hard"] for r in t.train_dataset}  # TRL repeats each prompt G times
    outcomes = [outcome(c, by_prompt[p]) for p, c in zip(t._logs["prompt"], texts)]
    assert len(texts) == 16
    expected = native(texts, outcomes)
    assert list(t._logs["rewards"]["correct"]) == pytest.approx(as_trl(expected, outcomes), abs=1e-6, nan_ok=True)
    assert list(t._logs["advantages"]) == pytest.approx(expected.advantages.reshape(-1).tolist(), abs=1e-5)


def test_other_reward_functions_keep_their_column(tmp_path):
    t = trainer(tmp_path / "run", judge_log=tmp_path / "judged", per_device=8, steps=1, two_rewards=True)
    t.train()
    texts = list(t._logs["completion"])
    assert list(t._logs["rewards"]["short"]) == pytest.approx([-0.01 * len(c) for c in texts])
    rec = records(tmp_path / "judged")[0]
    assert list(t._logs["rewards"]["correct"]) == pytest.approx(rec["rewards"], nan_ok=True)


@pytest.mark.parametrize("method", ["grpo", "random", "ngrpo"])
def test_baselines(tmp_path, method):
    t = trainer(tmp_path / "run", judge_log=tmp_path / "judged", per_device=16, steps=1, method=method)
    assert t.judge is None  # judge-free methods never build one
    t.train()
    rec = records(tmp_path / "judged")[0]
    grouped = torch.tensor(rec["outcomes"]).view(-1, G)
    if method == "random":
        scope = in_scope(grouped, "all_negative")
        with_steps = [i for i in scope if rec["completions"][i].strip()]
        assert with_steps and all(rec["rewards"][i] < 1.0 for i in with_steps)
        assert all(math.isnan(rec["rewards"][i]) for i in scope if i not in with_steps)  # unknown, as in SGPO
        assert all(rec["rewards"][i] == rec["outcomes"][i] for i in range(len(rec["rewards"])) if i not in scope)
    else:
        assert rec["rewards"] == rec["outcomes"]
    if method == "ngrpo":
        expected = METHODS.get("ngrpo")(grouped, params=ShapingParams(eps=TRL_EPS)).advantages.reshape(-1)
        assert list(t._logs["advantages"]) == pytest.approx(expected.tolist(), abs=1e-5)
        assert any(a < 0 for a, o in zip(t._logs["advantages"], rec["outcomes"]) if o == 0)


class Raises:
    def judge(self, requests):
        raise RuntimeError("judge server down")


class OutOfRange:
    def judge(self, requests):
        return [Verdict(len(r.steps) + 3, len(r.steps)) for r in requests]


@pytest.mark.parametrize("bad", [Raises, OutOfRange])
def test_a_failing_judge_never_stops_training(tmp_path, bad):
    t = trainer(tmp_path / "run", judge_log=tmp_path / "judged", per_device=8, steps=2)
    t.judge = bad()
    t.train()
    assert t.state.global_step == 2
    logs = records(tmp_path / "judged")
    for rec in logs:  # failed verdicts: unknown rewards (NaN rows, advantage 0); the other rows keep r = o
        assert all(math.isnan(r) == (i in rec["judged_rows"]) for i, r in enumerate(rec["rewards"]))
        assert all(r == o for i, (r, o) in enumerate(zip(rec["rewards"], rec["outcomes"])) if i not in rec["judged_rows"])
    hist = [h for h in t.state.log_history if "sgpo/judge_failures" in h]
    assert sum(h["sgpo/judge_failures"] for h in hist) == sum(len(rec["judged_rows"]) for rec in logs) > 0


def test_a_judge_that_is_down_is_warned_about_once_per_streak(tmp_path, caplog):
    t = trainer(tmp_path / "run", per_device=8, steps=3)
    t.judge = Raises()
    with caplog.at_level("WARNING", logger="sgpo.trl"):
        t.train()
    assert t.state.global_step == 3  # warned, not stopped: max_failure_frac is off by default
    warned = [r.getMessage() for r in caplog.records if r.name == "sgpo.trl"]
    assert len(warned) == 1 and warned[0].startswith("WARNING: step 1: the judge failed") and "(100%)" in warned[0]


def test_max_failure_frac_of_the_judge_yaml_stops_before_the_update(tmp_path):
    from sgpo.judges.watch import JudgeDown

    judge_yaml = tmp_path / "judge.yaml"
    judge_yaml.write_text("judge:\n  kind: rule\n  max_failure_frac: 0.5\n")
    t = trainer(tmp_path / "run", per_device=8, steps=3, sgpo_judge=str(judge_yaml))  # the judge object wins; the YAML sets the limits
    weights = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.judge = Raises()
    with pytest.raises(JudgeDown, match=r"step 1: the judge failed (\d+) of \1 verdicts \(100%\), at or above "
                                        r"judge.max_failure_frac=0.5; .*resume_from_checkpoint=True"):
        t.train()
    assert t.state.global_step == 0 and all(torch.equal(v, weights[k]) for k, v in t.model.state_dict().items())


def test_config_errors_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="sgpo_method='dapo'; choose one of: grpo, ngrpo, random, sgpo .it over-samples prompts"):
        SGPOConfig(output_dir=str(tmp_path), use_cpu=True, sgpo_method="dapo")
    with pytest.raises(ValueError, match="sgpo_scope='mixed'"):
        SGPOConfig(output_dir=str(tmp_path), use_cpu=True, sgpo_scope="mixed")
    with pytest.raises(ValueError, match="sgpo_outcome_reward='nosuch' is not a reward function; the reward functions are: correct"):
        trainer(tmp_path / "run", sgpo_outcome_reward="nosuch")
    with pytest.raises(ValueError, match="sgpo_method='sgpo' needs a step judge"):
        trainer(tmp_path / "run", no_judge=True)


def test_a_trl_that_counts_failed_verdicts_as_zero_is_refused(tmp_path, monkeypatch):
    import trl

    monkeypatch.setattr(trl, "__version__", "1.5.1")  # the last release before huggingface/trl#5902
    with pytest.raises(RuntimeError, match=r"SGPOTrainer needs trl>=1\.6\.0 \(found 1\.5\.1\)"):
        trainer(tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before TRL built anything


@pytest.mark.slow
def test_two_processes_split_groups_and_agree(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
    steps = 4
    with socket.socket() as s:  # a free loopback port for the rendezvous (torchrun's port 0 hangs here)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(Path(__file__).parent / "trl_worker.py"), str(tmp_path), str(steps)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    logs = records(tmp_path / "judged")
    by_step: dict[int, list[dict]] = {}
    for rec in logs:
        by_step.setdefault(rec["step"], []).append(rec)
    assert sorted(by_step) == list(range(steps))
    split_and_judged = 0
    for step, recs in by_step.items():
        assert sorted(r["rank"] for r in recs) == [0, 1] and all(r["world"] == 2 for r in recs)
        r0, r1 = sorted(recs, key=lambda r: r["rank"])
        assert r0["outcomes"] == r1["outcomes"]  # both processes agree
        assert r0["rewards"] == pytest.approx(r1["rewards"], abs=0, nan_ok=True)
        assert r0["first_row"] == 0 and r1["first_row"] == 6
        grouped = torch.tensor(r0["outcomes"]).view(-1, G)
        scope = in_scope(grouped, "all_negative")
        assert sorted(r0["judged_rows"] + r1["judged_rows"]) == scope  # every all-negative row, once
        assert all(i < 6 for i in r0["judged_rows"]) and all(i >= 6 for i in r1["judged_rows"])  # each its own rows
        texts = r0["completions"] + r1["completions"]
        expected = native(texts, r0["outcomes"])
        assert r0["rewards"] == pytest.approx(as_trl(expected, r0["outcomes"]), abs=1e-6, nan_ok=True)
        for i, (o, r) in enumerate(zip(r0["outcomes"], r0["rewards"])):
            if i not in scope:
                assert r == o  # no mixed group was graded
        # Group 1 holds rows 4-7: rows 4, 5 on process 0 and 6, 7 on process 1.
        split_and_judged += grouped[1].max() == 0 and bool({4, 5} & set(r0["judged_rows"])) and bool({6, 7} & set(r1["judged_rows"]))
    assert split_and_judged, "no all-negative group was split over the processes in this run"

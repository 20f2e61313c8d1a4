"""End-to-end tests of the native trainer on a tiny model (CPU, seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from testkit import assert_resume_is_exact, sgpo_cli, tiny_overrides

from sgpo.judges import Verdict
from sgpo.train.compare import default_target, steps_to
from sgpo.train.config import ConfigError, load_config
from sgpo.train.metrics import read_jsonl
from sgpo.train.trainer import Trainer

METRICS = [
    "step", "accuracy/train", "reward/mean", "groups/all_negative_frac", "groups/all_positive_frac",
    "groups/mixed_frac", "sgpo/judged_responses", "sgpo/judge_failures", "sgpo/recovered_groups_frac",
    "sgpo/rts_mean", "loss", "kl", "clip_frac", "entropy", "grad_norm", "time/generate", "time/judge",
    "time/train", "time/step", "tokens_per_s",
]


@pytest.mark.slow
def test_train_writes_run_directory_and_metric_names(tmp_path):
    run = tmp_path / "run"
    proc = sgpo_cli("train", *tiny_overrides(tmp_path, "train.steps=3", f"train.out_dir={run}", "algorithm.scope=all_incorrect"))
    assert proc.returncode == 0, proc.stderr
    for name in ("config.yaml", "metrics.jsonl", "samples.jsonl", "report.md"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "step_3" / "trainer_state.json").is_file()
    assert (run / "plots" / "eval_accuracy.png").stat().st_size > 1000
    start, *metrics = read_jsonl(run / "metrics.jsonl")
    # A fresh run evaluates once before the first update: a row of its own, at step 0.
    assert start["step"] == 0 and {"eval/accuracy", "eval/avg@2", "eval/pass@2"} <= set(start)
    assert "groups/all_negative_frac" not in start
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert set(METRICS) <= set(m), set(METRICS) - set(m)
        assert 0.0 <= m["groups/all_negative_frac"] <= 1.0
        assert m["groups/all_negative_frac"] + m["groups/all_positive_frac"] + m["groups/mixed_frac"] == pytest.approx(1.0)
    assert "eval/accuracy" in metrics[1] and "eval/avg@2" in metrics[2] and "eval/accuracy" not in metrics[0]
    samples = read_jsonl(run / "samples.jsonl")
    assert {"prompt", "completion", "outcome", "verdict", "reward", "advantage"} <= set(samples[0])
    # With scope all_incorrect every wrong response is judged.
    wrong = sum(m["sgpo/judged_responses"] for m in metrics)
    expected_wrong = sum(round((1 - m["accuracy/train"]) * 8) for m in metrics)
    assert wrong == expected_wrong


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path):
    common = tiny_overrides(tmp_path, "train.steps=6", "train.save_every=2", "train.eval_every=3")
    a, b = assert_resume_is_exact(common, tmp_path, checkpoint_step=2, last_step=6)
    assert a["data_position"] == b["data_position"]
    assert torch.equal(a["torch_rng"], b["torch_rng"]) and a["numpy_rng"] == b["numpy_rng"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, words",
    [
        ("algorithm.methd=grpo", ["algorithm.methd", "method", "scope"]),
        ("rollout.group_size=1", ["rollout.group_size", "greater than or equal to 2"]),
        ("rollout.temperature=hot", ["rollout.temperature", "number"]),
        ("algorithm.method=ppo", ["algorithm.method", "'grpo'", "'sgpo'", "'dapo'", "'ngrpo'", "'random'"]),
        ("model.path=/nonexistent/model", ["model.path", "/nonexistent/model"]),
    ],
)
def test_bad_configuration_fails_before_training(tmp_path, override, words):
    run = tmp_path / "run"
    proc = sgpo_cli("train", *tiny_overrides(tmp_path, f"train.out_dir={run}", override))
    assert proc.returncode == 2
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (run / "metrics.jsonl").exists()


@pytest.mark.slow
def test_missing_config_file_is_named(tmp_path):
    proc = sgpo_cli("train", "--config", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "nope.yaml" in proc.stderr


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout:\n  group_size: 8\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*rollout\.bogus.*group_size") as e:
        load_config(bad)
    assert "\n" not in str(e.value)  # one line, as every bad-input message


class FailingJudge:
    """A judge whose backend is down: every verdict fails."""

    def judge(self, requests):
        return [Verdict.failed(len(r.steps), "error", raw="backend down") for r in requests]


class RaisingJudge:
    def judge(self, requests):
        raise ConnectionError("judge server unreachable")


@pytest.mark.parametrize("judge", [FailingJudge(), RaisingJudge()])
def test_failed_judge_degrades_to_grpo_and_is_counted(tmp_path, judge):
    cfg = load_config(None, tiny_overrides(tmp_path, "train.steps=2", "algorithm.scope=all_incorrect"))
    trainer = Trainer(cfg, tmp_path / "run", log=lambda *a: None)
    trainer.judge = judge
    metrics = trainer.step()
    assert metrics["sgpo/judge_failures"] == metrics["sgpo/judged_responses"] > 0
    assert metrics["sgpo/rts_mean"] == 0.0
    # Every reward is the plain outcome, as in GRPO.
    assert metrics["reward/mean"] == pytest.approx(metrics["accuracy/train"])


@pytest.mark.slow
def test_compare_writes_report_and_summary(tmp_path):
    out = tmp_path / "cmp"
    proc = sgpo_cli(
        "compare", "--methods", "grpo", "sgpo", "dapo", "--seeds", "1", "2", "--out", str(out),
        *tiny_overrides(tmp_path, "train.steps=2"),
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"grpo", "sgpo", "dapo"}
    for per_seed in summary["methods"].values():
        assert set(per_seed) == {"1", "2"}
        for run in per_seed.values():
            assert {
                "curve", "start_eval_sampled", "final_eval_sampled", "area_eval_sampled", "best_eval_sampled",
                "final_eval_accuracy", "steps_to_target", "start_all_negative_frac", "mean_all_negative_frac",
                "judge_calls", "wall_seconds",
            } <= set(run)
            assert 0.0 <= run["final_eval_sampled"] <= 1.0
            # The curve starts with the evaluation before the first update (train.eval_every=2, 2 steps).
            assert run["curve"]["steps"] == [0, 2] and run["start_eval_sampled"] == run["curve"]["sampled"][0]
    for method, agg in summary["over_seeds"].items():
        finals = [r["final_eval_sampled"] for r in summary["methods"][method].values()]
        assert agg["final_eval_sampled"]["n"] == 2
        assert min(finals) <= agg["final_eval_sampled"]["lo"] <= agg["final_eval_sampled"]["hi"] <= max(finals)
    assert summary["baseline"] == "grpo" and set(summary["gaps"]) == {"sgpo", "dapo"}
    assert summary["metric"] == "eval/avg@2"  # tiny_overrides set train.eval_k=2
    assert summary["methods"]["grpo"]["1"]["judge_calls"] == 0
    report = (out / "report.md").read_text()
    assert "| sgpo |" in report and "| grpo |" in report
    for name in ("eval_avgat2.png", "eval_accuracy.png", "groups_all_negative_frac.png", "sgpo_recovered_groups_frac.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    # The same seed gives the same prompts to every method: the first step's batch is identical.
    first = {m: read_jsonl(out / m / "seed_1" / "samples.jsonl")[0]["prompt"] for m in ("grpo", "sgpo")}
    assert first["grpo"] == first["sgpo"]


def test_default_target_lies_between_the_start_and_the_best_method():
    def run(*evals):
        return [{"step": 10 * (i + 1), "eval/avg@4": v} for i, v in enumerate(evals)]

    histories = {"grpo": [run(0.10, 0.12), run(0.14, 0.16)], "sgpo": [run(0.12, 0.30), run(0.12, 0.20)]}
    # start = mean of first evals = 0.12; best method's mean final = 0.25; halfway = 0.185.
    assert default_target(histories, "eval/avg@4") == pytest.approx(0.185)
    assert steps_to(histories["sgpo"][0], 0.185, "eval/avg@4") == 20
    assert steps_to(histories["grpo"][1], 0.185, "eval/avg@4") is None

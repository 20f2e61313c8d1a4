"""`sgpo train-judge`: a small judge trained from step-labelled data, saved, and loaded by PRMJudge.

Kept small for CI (a one-layer model, a few dozen steps): these check the pipeline — data, targets,
training, threshold tuning, saving, loading, held-out comparison. The numbers of a full default
run are in docs/judges.md.
"""

from __future__ import annotations

import json

import pytest

from sgpo.cli import main
from sgpo.judge_training.prm import step_targets
from sgpo.judges import JudgeRequest
from sgpo.judges.config import JudgeConfig, build_judge
from sgpo.judges.data import LabelledSolution, read_processbench, write_jsonl

TINY = ["--layers", "1", "--d-model", "32", "--heads", "2", "--threads", "1", "--lr", "3e-3"]


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_targets_stop_after_the_first_error():
    assert step_targets(LabelledSolution("a", "p", ["x"] * 4, 1)) == [1, 0, -100, -100]
    assert step_targets(LabelledSolution("a", "p", ["x"] * 3, -1)) == [1, 1, 1]
    assert step_targets(LabelledSolution("a", "p", ["x"] * 2, 0)) == [0, -100]


def test_train_on_generated_arith_data_then_load_and_beat_baselines(tmp_path, capsys):
    out = tmp_path / "judge"
    code = main(["train-judge", "--source", "corrupted", "--n-train", "400", "--steps", "80", *TINY, "--out", str(out)])
    assert code == 0
    meta = json.loads((out / "sgpo_judge.json").read_text())
    assert meta["format"] == "sgpo" and meta["use_reference"] is True and 0 < meta["threshold"] < 1
    assert (out / "config.json").is_file() and (out / "heldout.md").is_file()
    table = capsys.readouterr().out
    assert "| trained |" in table and "| first |" in table

    # The saved judge loads like any PRM and judges the held-out set.
    heldout = read_processbench(out / "heldout.jsonl")
    judge = build_judge(JudgeConfig(kind="prm", prm={"model": str(out)}))
    verdicts = judge.judge([JudgeRequest(r.problem, r.steps, r.reference) for r in heldout])
    assert all(v.ok for v in verdicts) and judge.inner.inner.threshold == meta["threshold"]

    assert main(["judge-eval", str(out / "heldout.jsonl"), "--judge", "first", "--judge", "last", "--judge", "none",
                 "--judge", str(out), "--out", str(tmp_path / "eval")]) == 0
    results = {r["judge"]: r for r in json.loads((tmp_path / "eval" / "results.json").read_text())}
    assert results["judge"]["f1"] > max(results[b]["f1"] for b in ("first", "last", "none"))


def test_train_from_stepwise_and_processbench_files(tmp_path, capsys):
    stepwise = [{"prompt": "Start with 2. Add 3.", "completions": ["2 + 3 = 5", "Answer: 5"], "labels": [True, True]},
                {"prompt": "Start with 2. Add 3.", "completions": ["2 + 3 = 6", "Answer: 6"], "labels": [False, False]}] * 10
    processbench = [{"id": i, "problem": "Start with 4. Multiply by 2.", "steps": ["4 * 2 = 8", "Answer: 9"], "label": 1,
                     "final_answer_correct": False} for i in range(10)]
    a = write_jsonl(tmp_path / "a.jsonl", stepwise)
    b = write_jsonl(tmp_path / "b.jsonl", processbench)
    out = tmp_path / "j"
    assert main(["train-judge", "--data", str(a), "--data", str(b), "--steps", "10", *TINY, "--out", str(out)]) == 0
    assert "validation" in json.loads(capsys.readouterr().out)
    meta = json.loads((out / "sgpo_judge.json").read_text())
    assert meta["use_reference"] is False and meta["train_rows"] == 27 and meta["base_model"] == "tiny"
    v, = build_judge(JudgeConfig(kind="prm", prm={"model": str(out)})).judge([JudgeRequest("Start with 2. Add 3.", ["2 + 3 = 5"])])
    assert v.ok and v.n_steps == 1

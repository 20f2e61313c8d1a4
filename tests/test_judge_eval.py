"""`sgpo judge-eval` metrics, baselines and table; `sgpo judge` on a JSONL of responses."""

from __future__ import annotations

import json
import math

import pytest
from fixtures_server import FakeServer, Response, completion

from sgpo.cli import main
from sgpo.judge_training.arith_data import corrupted_rows
from sgpo.judges import Verdict
from sgpo.judges.baselines import ConstantJudge
from sgpo.judges.data import DataError, LabelledSolution, read_labelled, read_processbench, write_jsonl
from sgpo.judges.judge_eval import compute_metrics, evaluate, markdown_table


def row(label: int, k: int = 4) -> LabelledSolution:
    return LabelledSolution(f"r{label}", "p", [f"s{i}" for i in range(k)], label)


def test_metrics_by_hand():
    rows = [row(0), row(2), row(3), row(-1), row(-1)]
    verdicts = [Verdict(0, 4), Verdict(1, 4), Verdict.failed(4, "timeout"), Verdict(-1, 4), Verdict(2, 4)]
    m = compute_metrics(rows, verdicts, seconds=1.0)
    assert m["acc_erroneous"] == pytest.approx(1 / 3) and m["acc_correct"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert m["exact"] == pytest.approx(2 / 5)
    # positions: -1 -> K = 4; distances over usable verdicts: 0, 1, 0, |2 - 4| = 2
    assert m["mean_distance"] == pytest.approx(3 / 4)
    assert m["failures"] == 1 and m["failures_by_status"] == {"timeout": 1}
    assert m["latency_s"] == pytest.approx(0.2) and m["erroneous_rows"] == 3 and m["correct_rows"] == 2


def test_baselines_score_zero_f1_and_rule_is_exact(tmp_path):
    data = write_jsonl(tmp_path / "arith.jsonl", (r.to_processbench() for r in corrupted_rows(120, "test")))
    results, _ = evaluate(data, ["first", "last", "none", "rule"], log=lambda m: None)
    by = {r["judge"]: r for r in results}
    assert all(by[b]["f1"] == 0.0 for b in ("first", "last", "none"))
    assert by["none"]["acc_correct"] == 1.0 and by["none"]["acc_erroneous"] == 0.0
    assert by["first"]["acc_correct"] == 0.0 and 0 < by["first"]["acc_erroneous"] < 1
    assert by["rule"]["f1"] == 1.0 and by["rule"]["exact"] == 1.0 and by["rule"]["mean_distance"] == 0.0
    table = markdown_table(results)
    assert table.count("\n") == 5 and "| rule | 1.000 |" in table


def test_cli_compares_judges_and_writes_results(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", (r.to_processbench() for r in corrupted_rows(30, "test")))
    with FakeServer(lambda i, body: Response(body=completion("\\boxed{0}"))) as fake:
        cfg = tmp_path / "always0.yaml"
        cfg.write_text(f"kind: llm_http\nhttp: {{base_url: '{fake.base_url}', model: m, concurrency: 4}}\n")
        down = tmp_path / "down.yaml"
        down.write_text("kind: llm_http\nhttp: {base_url: 'http://127.0.0.1:9/v1', model: m, max_retries: 0}\n")
        code = main(["judge-eval", str(data), "--judge", "first", "--judge", str(cfg), "--judge", f"dead={down}",
                     "--judge", "none", "--out", str(tmp_path / "out")])
    assert code == 0
    table = capsys.readouterr().out
    assert "| first |" in table and "| always0 |" in table and "| dead |" in table
    results = {r["judge"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())}
    # An LLM that always says step 0 scores exactly like the `first` baseline.
    for key in ("f1", "acc_erroneous", "acc_correct", "exact", "mean_distance"):
        assert results["always0"][key] == results["first"][key]
    assert results["always0"]["stats"]["judge/calls"] == 30
    assert results["dead"]["failures"] == 30 and results["dead"]["failures_by_status"] == {"error": 30}
    assert results["dead"]["acc_correct"] == 0.0 and math.isnan(results["dead"]["mean_distance"])
    lines = (tmp_path / "out" / "verdicts" / "always0.jsonl").read_text().splitlines()
    assert len(lines) == 30 and json.loads(lines[0])["first_error"] == 0
    md = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert sum(line.startswith("|") for line in md) == 6  # header, rule, four judges


def test_cli_reports_bad_rows_and_unknown_judges(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "problem": "p", "steps": ["a"], "label": -1}\n{"id": 2, "problem": "p", "steps": ["a"], "label": 3}\n')
    assert main(["judge-eval", str(bad), "--judge", "none"]) == 2
    assert f"{bad}:2: label must be an integer in -1..0" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": 1, "problem": "p", "steps": ["a"], "label": -1, "final_answer_correct": true}\n')
    assert main(["judge-eval", str(good), "--judge", "none", "--judge", "nonsense"]) == 2
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == [out.err.strip()]  # one line, no traceback
    assert out.err.startswith("sgpo judge-eval: error: --judge 'nonsense': not a baseline") and out.out == ""


def test_reading_both_formats(tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text(
        '{"prompt": "p", "completions": ["a", "b", "c"], "labels": [true, false, false]}\n'
        '{"id": "x", "problem": "q", "steps": ["a"], "label": -1, "final_answer_correct": true, "reference": "r"}\n'
    )
    a, b = read_labelled(f)
    assert a.label == 1 and a.step_labels() == [True, False, False]
    assert b.label == -1 and b.step_labels() == [True] and b.reference == "r"
    with pytest.raises(DataError, match="mixed.jsonl:1"):
        read_processbench(f)
    f.write_text('{"prompt": "p", "completions": ["a"], "labels": [true, false]}\n')
    with pytest.raises(DataError, match=":1: labels must be a list of 1 booleans"):
        read_labelled(f)


def test_constant_judges():
    from sgpo.judges import JudgeRequest

    reqs = [JudgeRequest("p", ["a", "b", "c"]), JudgeRequest("p", [])]
    assert [v.first_error for v in ConstantJudge("last").judge(reqs)] == [2, -1]
    assert ConstantJudge("first").judge(reqs)[1].status == "invalid"


def test_sgpo_judge_cli_writes_verdicts_and_stats(tmp_path, capsys):
    rows = [
        {"id": "a", "problem": "Start with 7. Add 5. Multiply by 3.", "response": "7 + 5 = 12\n12 * 3 = 37\nAnswer: 37"},
        {"id": "b", "question": "Start with 7. Add 5. Multiply by 3.", "steps": ["7 + 5 = 12", "12 * 3 = 36", "Answer: 36"]},
        {"id": "c", "problem": "Start with 7. Add 5. Multiply by 3.", "response": "7 + 5 = 12\n12 * 3 = 37\nAnswer: 37"},
    ]
    src = write_jsonl(tmp_path / "responses.jsonl", rows)
    cfg = tmp_path / "train.yaml"
    cfg.write_text("algorithm: {method: sgpo}\njudge: {kind: rule, cache: true}\n")  # a training config works
    assert main(["judge", str(src), "--judge", str(cfg), "--out", str(tmp_path / "v.jsonl"), "--batch-size", "1"]) == 0
    out = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [(o["id"], o["first_error"], o["n_steps"], o["status"]) for o in out] == [
        ("a", 1, 3, "ok"), ("b", -1, 3, "ok"), ("c", 1, 3, "ok")]
    stats = json.loads(capsys.readouterr().err.split("judge stats: ")[1])
    assert stats["verdicts"] == 3 and stats["failed"] == 0 and stats["judge/cache_hits"] == 1
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"problem": "p"}])
    assert main(["judge", str(bad)]) == 2
    assert f"{bad}:1: needs the response" in capsys.readouterr().err


def test_the_rollout_judge_is_refused_where_no_policy_can_drive_it():
    from sgpo.errors import ConfigError
    from sgpo.judges.judge_eval import resolve_judge

    with pytest.raises(ConfigError, match="--judge rollout needs a policy to sample from"):
        resolve_judge("rollout")
    assert resolve_judge("first")[0] == "first"  # the other judges still resolve

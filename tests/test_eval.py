"""`sgpo eval` end to end on a tiny model built in code that always answers \\boxed{7}."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from testkit import jsonl, sgpo_cli

from sgpo.evaluation.model_eval import FileResult
from sgpo.models.policies import arith_tokenizer, save_policy, tiny_policy
from sgpo.sampling.rollout import format_prompt
from sgpo.tasks.math_task import SYSTEM_PROMPT, MathTask


@pytest.fixture(scope="module")
def seven_model(tmp_path_factory) -> Path:
    """A 1-layer policy taught to answer every problem with "\\boxed{7}": its scores are known exactly."""
    torch.manual_seed(0)
    tok = arith_tokenizer()
    model = tiny_policy(tok, n_layers=1, d_model=32, n_heads=2)
    questions = [p.question for p in MathTask().problems("train", 64)] + ["A big one?", "Tom has 3 bags. How many?"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    target = "\\boxed{7}" + tok.eos_token
    for step in range(60):
        batch = [questions[(step * 8 + i) % len(questions)] for i in range(8)]
        prompts = [format_prompt(q, tok, SYSTEM_PROMPT, "plain") for q in batch]
        enc = tok([p + target for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].clone()
        n_target = len(tok(target, add_special_tokens=False)["input_ids"])
        labels[:, :-n_target] = -100  # left padding: the target is the last n_target tokens
        position_ids = (enc["attention_mask"].cumsum(1) - 1).clamp(min=0)
        loss = model(**enc, position_ids=position_ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    out = tmp_path_factory.mktemp("seven")
    save_policy(model, tok, out)
    return out


def test_eval_reads_gsm8k_math500_and_aime_layouts(seven_model, tmp_path):
    gsm = jsonl(tmp_path / "gsm8k.jsonl", [
        {"question": "Tom has 3 apples and gets 4 more. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
        {"question": "Tom has 5 apples and gets 3 more. How many?", "answer": "5 + 3 = <<5+3=8>>8\n#### 8"},
    ])
    math500 = jsonl(tmp_path / "math500.jsonl", [
        {"problem": "Compute $14/2$.", "solution": "It is $\\boxed{\\frac{14}{2}}$.", "answer": "\\frac{14}{2}", "unique_id": "a"},
        {"problem": "Compute $3.5 \\cdot 2$.", "solution": "$\\boxed{7.0}$", "answer": "7.0", "unique_id": "b"},
        {"problem": "Compute $3^2$.", "solution": "$\\boxed{9}$", "answer": "9", "unique_id": "c"},
    ])
    aime = jsonl(tmp_path / "aime.jsonl", [{"id": 1, "problem": "Find n.", "answer": 7}, {"id": 2, "problem": "Find m.", "answer": 12}])
    out = tmp_path / "eval" / "results.jsonl"
    proc = sgpo_cli("eval", "--model", str(seven_model), str(gsm), str(math500), str(aime), "--temperature", "0",
                    "--max-new-tokens", "12", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "gsm8k.jsonl: 2 problems; fields problem='question' answer='answer' id=None" in proc.stdout
    assert "math500.jsonl: 3 problems; fields problem='problem' answer='answer' id='unique_id'" in proc.stdout
    assert "aime.jsonl: 2 problems; fields problem='problem' answer='answer' id='id'" in proc.stdout
    assert "avg@1" in proc.stdout and "pass@1" in proc.stdout  # the table
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 7 and all(r["extracted"] == ["7"] for r in rows)
    assert [r["answer"] for r in rows] == ["7", "8", "\\frac{14}{2}", "7.0", "9", "7", "12"]
    assert [r["id"] for r in rows[2:]] == ["a", "b", "c", "1", "2"]
    summary = json.loads((tmp_path / "eval" / "results.summary.json").read_text())
    assert summary["k"] == 1 and summary["temperature"] == 0
    scores = {Path(f["file"]).name: (f["avg@1"], f["pass@1"], f["problems"]) for f in summary["files"]}
    assert scores == {"gsm8k.jsonl": (0.5, 0.5, 2), "math500.jsonl": (pytest.approx(2 / 3), pytest.approx(2 / 3), 3),
                      "aime.jsonl": (0.5, 0.5, 2)}
    assert summary["files"][0]["statuses"]["correct"] == 1 and summary["files"][0]["statuses"]["wrong"] == 1


def test_eval_default_is_the_builtin_test_split_and_scores_are_consistent(seven_model, tmp_path):
    out = tmp_path / "r.jsonl"
    proc = sgpo_cli("eval", "--model", str(seven_model), "--k", "3", "--temperature", "1.0", "--limit", "12",
                    "--batch-size", "6", "--max-new-tokens", "12", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "built-in test: 12 problems" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    builtin = MathTask().problems("test", 12)
    assert [r["id"] for r in rows] == [p.id for p in builtin]
    for r in rows:
        assert len(r["responses"]) == len(r["correct"]) == len(r["status"]) == 3
        assert r["avg"] == pytest.approx(sum(r["correct"]) / 3) and r["pass"] == any(r["correct"])
    s = json.loads(out.with_name("r.summary.json").read_text())["files"][0]
    assert s["avg@3"] == pytest.approx(sum(r["avg"] for r in rows) / 12)
    assert s["pass@3"] == pytest.approx(sum(r["pass"] for r in rows) / 12)
    assert sum(s["statuses"].values()) == 36
    # The model says 7 almost always: the problems whose answer is 7 are the ones it gets.
    sevens = [r["pass"] for r in rows if r["answer"] == "7"]
    others = [r["avg"] for r in rows if r["answer"] != "7"]
    assert sevens and all(sevens) and sum(others) == 0


def test_eval_bad_files_exit_2_naming_file_line_and_field(seven_model, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "p", "answer": "1"}\n{"problem": "q", "answer": \n')
    proc = sgpo_cli("eval", "--model", str(seven_model), str(bad), "--no-progress")
    assert proc.returncode == 2 and f"{bad}:2: not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
    good = jsonl(tmp_path / "good.jsonl", [{"problem": "p", "answer": "1"}])
    proc = sgpo_cli("eval", "--model", str(seven_model), str(good), "--answer-field", "target", "--no-progress")
    assert proc.returncode == 2 and f"{good}:1: field 'target' (the answer) is missing" in proc.stderr


def test_file_result_summary():
    r = FileResult("f", "fields", problems=4, correct=[0, 1, 4, 2])
    s = r.summary(4)
    assert s["avg@4"] == pytest.approx(7 / 16) and s["pass@4"] == pytest.approx(3 / 4)

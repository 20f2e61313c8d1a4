"""`sgpo analyze`: its numbers checked by hand on a small rollouts file built in the test."""

from __future__ import annotations

import json
import math

import pytest
from testkit import G, group, sgpo_cli, sigmoid, write_file

from sgpo.core import ShapingParams
from sgpo.evaluation.analyze import analyze
from sgpo.judges import Verdict
from sgpo.rollouts.file import read_rollouts

OK4 = lambda k: Verdict(k, 4)  # noqa: E731


@pytest.fixture
def hand_made(tmp_path):
    """Five groups of four:

    g0 all-negative, judged: first errors 0, 1, 2, none of 4 steps -> RTS 0, .25, .5, .75
    g1 all-negative, judged: every response wrong at step 1 -> equal rewards, no signal
    g2 mixed (1, 0, 0, 0), not judged
    g3 all-positive, not judged
    g4 all-negative: one failed verdict, one "ok" verdict about zero steps, two not judged
    """
    groups = [
        group(0, (0, 0, 0, 0), (OK4(0), OK4(1), OK4(2), OK4(-1))),
        group(1, (0, 0, 0, 0), (OK4(1),) * 4),
        group(2, (1, 0, 0, 0)),
        group(3, (1, 1, 1, 1)),
        group(4, (0, 0, 0, 0), (Verdict.failed(3, "error"), Verdict(-1, 0), None, None)),
    ]
    return write_file(tmp_path / "hand.jsonl", groups)


def _advantages(rewards: list[float]) -> list[float]:
    """GRPO advantages by hand: (r - mean) / (unbiased std + 1e-6)."""
    m = sum(rewards) / len(rewards)
    sd = math.sqrt(sum((r - m) ** 2 for r in rewards) / (len(rewards) - 1))
    return [(r - m) / (sd + 1e-6) for r in rewards]


def test_numbers_match_a_hand_count(hand_made):
    a = analyze(read_rollouts(hand_made))
    assert (a["groups"], a["group_size"], a["responses"]) == (5, G, 20)
    assert a["accuracy"] == pytest.approx(5 / 20)
    assert {k: v["count"] for k, v in a["group_kinds"].items()} == {"all_negative": 3, "mixed": 1, "all_positive": 1}
    assert a["group_kinds"]["all_negative"]["share"] == pytest.approx(0.6)
    assert a["verdicts"] == {"ok": 9, "error": 1, "not judged": 10}
    assert a["scope"] == {"responses": 12, "usable_verdict": 8, "failed_verdict": 2, "missing_verdict": 2}
    assert a["first_error"] == {"-1": 1, "0": 1, "1": 5, "2": 1}
    assert a["rts"]["counts"] == [1, 0, 5, 0, 0, 1, 0, 1, 0, 0]
    assert a["rts"]["mean"] == pytest.approx((0 + 0.25 + 0.5 + 0.75 + 4 * 0.25) / 8)

    grpo, sgpo = a["methods"]["grpo"], a["methods"]["sgpo"]
    assert grpo["groups_with_signal"] == 1 and sgpo["groups_with_signal"] == 2
    assert a["sgpo_recovered"] == {"groups": 1, "of_all_negative": pytest.approx(1 / 3)}
    assert grpo["by_kind"]["all_negative"]["mean_abs_advantage"] == 0.0
    mixed = _advantages([1, 0, 0, 0])
    assert grpo["by_kind"]["mixed"]["mean_abs_advantage"] == pytest.approx(sum(map(abs, mixed)) / 4, rel=1e-6)
    assert sgpo["by_kind"]["mixed"]["mean_abs_advantage"] == pytest.approx(sum(map(abs, mixed)) / 4, rel=1e-6)
    g0 = [sigmoid(5 * (rts - 0.5)) for rts in (0, 0.25, 0.5, 0.75)]
    g1 = [sigmoid(5 * (0.25 - 0.5))] * 4
    assert sgpo["by_kind"]["all_negative"]["mean_abs_advantage"] == pytest.approx(sum(map(abs, _advantages(g0))) / 12, rel=1e-5)
    assert sgpo["by_kind"]["all_negative"]["mean_reward"] == pytest.approx((sum(g0) + sum(g1)) / 12, rel=1e-5)
    assert sgpo["by_kind"]["all_positive"]["mean_abs_advantage"] == 0.0
    assert sgpo["responses_with_nonzero_advantage"] == 8 and grpo["responses_with_nonzero_advantage"] == 4


def test_options_change_what_sgpo_would_assign(hand_made):
    rf = read_rollouts(hand_made)
    wide = analyze(rf, ShapingParams(scope="all_incorrect"))
    assert wide["scope"] == {"responses": 15, "usable_verdict": 8, "failed_verdict": 2, "missing_verdict": 5}
    linear = analyze(rf, ShapingParams(mapping="linear", mapping_params={"scale": 0.5}, scale="none"))
    g0 = [0.5 * rts for rts in (0, 0.25, 0.5, 0.75)]
    centred = [r - sum(g0) / 4 for r in g0]
    assert linear["methods"]["sgpo"]["by_kind"]["all_negative"]["mean_abs_advantage"] == pytest.approx(sum(map(abs, centred)) / 12)


def test_cli_prints_the_table_and_writes_the_report(hand_made, tmp_path):
    out = tmp_path / "report"
    proc = sgpo_cli("analyze", str(hand_made), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "recovers 1 of 3 all-negative groups (33%)" in proc.stdout
    assert "groups with a learning signal: GRPO 1, SGPO 2 of 5" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("all-negative"))
    assert row.split()[:3] == ["all-negative", "3", "0.600"]
    report = (out / "report.md").read_text()
    assert "| all-negative | 3 | 0.600 |" in report and "mean \\|A\\|" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sgpo_recovered"]["groups"] == 1 and summary["scope"]["missing_verdict"] == 2
    for name in ("group_kinds.png", "first_error.png", "rts.png", "advantages_all_negative.png"):
        assert (out / "plots" / name).stat().st_size > 1000, name
        assert f"plots/{name}" in report


def test_cli_flags_reach_the_analysis_and_bad_values_are_named(hand_made, tmp_path):
    proc = sgpo_cli("analyze", str(hand_made), "--scope", "all_incorrect", "--mapping", "linear")
    assert proc.returncode == 0 and "SGPO scope all_incorrect: 15 responses" in proc.stdout and "linear scale=0.5" in proc.stdout
    bad = sgpo_cli("analyze", str(hand_made), "--linear-scale", "2")
    assert bad.returncode == 2 and "--linear-scale" in bad.stderr and "Traceback" not in bad.stderr
    missing = sgpo_cli("analyze", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr


def test_cli_reports_a_file_cut_short(hand_made):
    data = hand_made.read_bytes()
    hand_made.write_bytes(data[:-30])
    proc = sgpo_cli("analyze", str(hand_made))
    assert proc.returncode == 0, proc.stderr
    assert f"{hand_made}:21: incomplete last line" in proc.stderr
    assert "4 groups x 4 responses" in proc.stdout
    assert "1 incomplete line(s) skipped, 1 incomplete group(s) dropped" in proc.stdout

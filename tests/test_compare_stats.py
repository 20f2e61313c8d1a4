"""`sgpo compare`'s statistics on hand-made curves: area, steps to target, bootstrap intervals,
paired gaps. Expected values are worked out by hand in the comments, not taken from the code."""

from __future__ import annotations

import pytest

from sgpo.evaluation import curves
from sgpo.train.compare import default_target, gaps, over_seeds, summarize


def test_area_is_the_mean_of_the_evaluations():
    # (0.1 + 0.2 + 0.3 + 0.6) / 4 = 0.3
    assert curves.area([0.1, 0.2, 0.3, 0.6]) == pytest.approx(0.3)
    assert curves.area([]) is None


def test_steps_to_target_is_the_first_evaluation_at_or_above_it():
    steps, values = [0, 10, 20, 30], [0.1, 0.2, 0.3, 0.6]
    assert curves.steps_to(steps, values, 0.25) == 20
    assert curves.steps_to(steps, values, 0.3) == 20  # reaching the target exactly counts
    assert curves.steps_to(steps, values, 0.05) == 0  # already there before any update
    assert curves.steps_to(steps, values, 0.7) is None


def test_bootstrap_of_a_constant_has_no_width():
    b = curves.bootstrap([0.4, 0.4, 0.4])
    assert (b["mean"], b["lo"], b["hi"], b["n"]) == (pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.4), 3)


def test_bootstrap_of_two_values_spans_them():
    # Resampled means of [0, 1] are 0, 0.5, 1 with probability 1/4, 1/2, 1/4: the 2.5% and 97.5%
    # quantiles are 0 and 1.
    b = curves.bootstrap([0.0, 1.0])
    assert b["mean"] == 0.5 and b["lo"] == 0.0 and b["hi"] == 1.0


def test_bootstrap_interval_matches_the_exact_resampling_distribution():
    # The mean of 5 draws from {1, ..., 5}: P(mean <= 1.6) = 0.018 and P(mean <= 1.8) = 0.040
    # (convolving the uniform distribution five times), so the 2.5% quantile is 1.8; by symmetry
    # the 97.5% quantile is 4.2.
    b = curves.bootstrap([1, 2, 3, 4, 5])
    assert b["mean"] == pytest.approx(3.0)
    assert b["lo"] == pytest.approx(1.8) and b["hi"] == pytest.approx(4.2)


def test_bootstrap_is_seeded_skips_missing_values_and_handles_one_or_none():
    values = [0.12, 0.31, 0.2, 0.44, 0.27]
    assert curves.bootstrap(values) == curves.bootstrap(values)
    assert curves.bootstrap(values, seed=1) != curves.bootstrap(values, seed=2)
    assert curves.bootstrap([0.2, None, 0.4])["n"] == 2
    assert curves.bootstrap([0.7]) == {"mean": 0.7, "lo": 0.7, "hi": 0.7, "n": 1}
    assert curves.bootstrap([None]) is None
    assert curves.fmt_ci(curves.bootstrap([0.0, 1.0])) == "0.500 [0.000, 1.000]"


def test_band_and_paired_gap():
    # Two seeds: at step 0 values 0.1 and 0.3 (mean 0.2), at step 10 values 0.3 and 0.5 (mean 0.4);
    # with two values the interval spans them. Step 20 exists only in the first curve: left out.
    b = curves.band([([0, 10, 20], [0.1, 0.3, 0.9]), ([0, 10], [0.3, 0.5])])
    assert b["steps"] == [0, 10]
    assert b["mean"] == pytest.approx([0.2, 0.4])
    assert b["lo"] == pytest.approx([0.1, 0.3]) and b["hi"] == pytest.approx([0.3, 0.5])
    # Paired by seed: differences 0.1 and 0.2 -> mean 0.15, interval [0.1, 0.2]; seed "2" has no pair.
    g = curves.paired_gap({"0": 0.5, "1": 0.6, "2": 0.9}, {"0": 0.4, "1": 0.4})
    assert (g["mean"], g["lo"], g["hi"], g["n"]) == (pytest.approx(0.15), pytest.approx(0.1), pytest.approx(0.2), 2)


def _history(evals: list[float], all_negative: list[float], every: int = 10) -> list[dict]:
    """A run as the trainer logs it: a step-0 evaluation row, then RL steps with an evaluation every ``every``."""
    rows = [{"step": 0, "eval/accuracy": evals[0], "eval/avg@8": evals[0]}]
    for step, share in enumerate(all_negative, start=1):
        row = {"step": step, "groups/all_negative_frac": share}
        if step % every == 0:
            row["eval/accuracy"] = row["eval/avg@8"] = evals[step // every]
        rows.append(row)
    return rows


def test_summarize_reads_the_curve_from_step_zero():
    h = _history([0.1, 0.2, 0.6], [0.8] * 10 + [0.4] * 10)
    s = summarize(h, target=0.5, wall=12.0, sampled_key="eval/avg@8", headline="eval/avg@8")
    assert s["curve"]["steps"] == [0, 10, 20] and s["curve"]["sampled"] == [0.1, 0.2, 0.6]
    assert s["start_eval_sampled"] == 0.1 and s["final_eval_sampled"] == 0.6
    assert s["area_eval_sampled"] == pytest.approx(0.3)  # (0.1 + 0.2 + 0.6) / 3
    assert s["steps_to_target"] == 20
    # The all-negative share is over the 20 RL steps only: (10 * 0.8 + 10 * 0.4) / 20 = 0.6.
    assert s["start_all_negative_frac"] == 0.8
    assert s["mean_all_negative_frac"] == pytest.approx(0.6)


def test_default_target_is_halfway_from_the_step_zero_mean():
    # Start = mean of the step-0 evaluations = 0.1; best method's mean final = (0.5 + 0.7) / 2 = 0.6;
    # halfway: 0.35.
    shares = [0.5] * 20
    hs = {"grpo": [_history([0.1, 0.2, 0.3], shares)], "sgpo": [_history([0.1, 0.4, 0.5], shares), _history([0.1, 0.5, 0.7], shares)]}
    assert default_target(hs, "eval/avg@8") == pytest.approx(0.35)


def test_over_seeds_and_gaps_against_the_baseline():
    shares = [0.5] * 20
    runs = {
        "grpo": {"0": _history([0.1, 0.2, 0.3], shares), "1": _history([0.1, 0.2, 0.5], shares)},
        "sgpo": {"0": _history([0.1, 0.4, 0.5], shares), "1": _history([0.1, 0.6, 0.7], shares)},
    }
    per = {m: {s: summarize(h, 0.35, 1.0, "eval/avg@8", "eval/avg@8") for s, h in r.items()} for m, r in runs.items()}
    agg = over_seeds(per["grpo"])
    # grpo finals 0.3 and 0.5: mean 0.4, interval [0.3, 0.5]; areas 0.2 and 0.8/3: mean 0.7/3.
    assert agg["final_eval_sampled"]["mean"] == pytest.approx(0.4)
    assert (agg["final_eval_sampled"]["lo"], agg["final_eval_sampled"]["hi"]) == (pytest.approx(0.3), pytest.approx(0.5))
    assert agg["area_eval_sampled"]["mean"] == pytest.approx(0.7 / 3)
    # grpo reaches 0.35 only on seed 1 (step 20); seed 0 never does.
    assert agg["steps_to_target"]["mean"] == 20 and agg["never_reached_target"] == 1
    g = gaps(per, "grpo")["sgpo"]
    # Paired final gaps 0.2 and 0.2; at step 10: 0.2 and 0.4 -> mean 0.3; at step 0 none.
    assert g["final_eval_sampled"]["mean"] == pytest.approx(0.2)
    assert g["by_step"]["10"]["mean"] == pytest.approx(0.3) and g["by_step"]["0"]["mean"] == pytest.approx(0.0)
    # grpo's mean final is 0.4; sgpo's mean curve is 0.1, 0.5, 0.6: it reaches 0.4 at step 10 of 20.
    assert g["baseline_final"] == pytest.approx(0.4) and g["steps_to_baseline_final"] == 10 and g["baseline_steps"] == 20

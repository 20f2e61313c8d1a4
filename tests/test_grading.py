"""The grading step (sgpo.grading) on hand-made batches: scope, failures, stored verdicts, RTS units."""

from __future__ import annotations

import math

import pytest
import torch

from sgpo.core import ShapingParams
from sgpo.grading import (
    GradingSettings,
    StepReading,
    grade,
    grading_stats,
    judge_rows,
    merge_grading_stats,
    request,
    shape,
    step_generator,
    token_counter,
    usable,
)
from sgpo.judges.base import ERROR, OK, Verdict
from sgpo.tasks.base import Problem

P = Problem("p", "Start with 1.", "1 + 1 = 2", "2")


def f(rts: float) -> float:
    return 1 / (1 + math.exp(-5 * (rts - 0.5)))


class ByFirstLine:
    """Verdict from the response's first step: 'eN' = first error at step N; 'fail' = a failed verdict."""

    def __init__(self):
        self.asked: list[list[str]] = []

    def judge(self, requests):
        self.asked.extend(r.steps for r in requests)
        out = []
        for r in requests:
            head = r.steps[0]
            out.append(Verdict.failed(len(r.steps), ERROR) if head == "fail" else Verdict(int(head[1:]), len(r.steps)))
        return out


def texts_of(rows):
    return ["\n".join(r) for r in rows]


def test_only_all_negative_groups_are_judged_and_graded():
    # group 0: all wrong (graded); group 1: mixed (its wrong responses keep 0)
    texts = texts_of([["e0", "b", "c", "d"], ["e2", "b", "c", "d"], ["fail", "b"], [""],
                      ["e1", "x"], ["e1", "x"], ["right"], ["e0"]])
    outcomes = torch.tensor([[0.0, 0, 0, 0], [0, 0, 1, 0]])
    judge = ByFirstLine()
    g = grade([P, P], texts, outcomes, GradingSettings("sgpo"), judge)
    assert judge.asked == [["e0", "b", "c", "d"], ["e2", "b", "c", "d"], ["fail", "b"]]  # no empty, no mixed group
    assert g.calls == 3
    assert g.rewards[0].tolist() == pytest.approx([f(0.0), f(0.5), 0.0, 0.0])
    assert g.rewards[1].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert g.verdict_ok[0].tolist() == [True, True, False, False]
    assert g.judged.tolist() == [[True] * 4, [False] * 4]
    # The failed and the step-less verdicts are unknown rewards: advantage 0, out of the group's statistics.
    assert g.advantages[0, 2:].tolist() == [0.0, 0.0]
    a = (f(0.5) - f(0.0)) / 2 / ((f(0.5) - f(0.0)) / 2 ** 0.5)  # two known rewards: +-(diff/2) / std
    assert g.advantages[0, :2].tolist() == pytest.approx([-a, a], rel=1e-4)
    stats = grading_stats(outcomes, g)
    assert stats["sgpo/judged_responses"] == 4 and stats["sgpo/judge_failures"] == 2
    assert stats["sgpo/rts_mean"] == pytest.approx(0.25)
    assert stats["groups/all_negative_frac"] == 0.5 and stats["sgpo/recovered_groups_frac"] == 0.5
    assert stats["accuracy/train"] == 1 / 8


def test_out_of_range_verdicts_are_failures():
    assert usable(Verdict(1, 2)) and usable(Verdict(-1, 2))
    assert not usable(Verdict(2, 2)) and not usable(Verdict(7, 2)) and not usable(Verdict(-2, 2))
    assert not usable(Verdict(0, 0)) and not usable(Verdict(0, 2, ERROR)) and not usable(None)

    class Wild:
        def judge(self, requests):
            return [Verdict(7, len(r.steps), OK) for r in requests]

    outcomes = torch.zeros(1, 2)
    g = grade([P], ["a\nb", "c\nd"], outcomes, GradingSettings("sgpo"), Wild())
    assert g.rewards.tolist() == [[0.0, 0.0]] and not g.verdict_ok.any()


def test_stored_verdicts_are_used_and_only_missing_ones_asked():
    texts = texts_of([["e1", "b"], ["e0", "b"]])
    judge = ByFirstLine()
    stored = [Verdict(0, 2), None]
    g = grade([P], texts, torch.zeros(1, 2), GradingSettings("sgpo"), judge, stored=stored)
    assert judge.asked == [["e0", "b"]] and g.calls == 1
    assert g.rts.tolist() == [[0.0, 0.0]]  # the stored verdict (error at 0) wins over the text's e1
    with pytest.raises(ValueError, match="need a verdict but no judge"):
        grade([P], texts, torch.zeros(1, 2), GradingSettings("sgpo"), None)


def test_token_unit_rts_counts_tokens_before_the_first_error():
    texts = texts_of([["e1", "bbbbbbbb"], ["e0", "b"]])  # e1: 2 tokens before the error of 10
    settings = GradingSettings("sgpo", rts_unit="tokens")
    g = grade([P], texts, torch.zeros(1, 2), settings, ByFirstLine(), count_tokens=len)
    assert g.rts.tolist()[0] == pytest.approx([2 / 10, 0.0])
    with pytest.raises(ValueError, match="count_tokens"):
        grade([P], texts, torch.zeros(1, 2), settings, ByFirstLine())


def test_random_grades_exactly_what_sgpo_could():
    texts = texts_of([["a", "b"], [""], ["c"], ["d"], ["right"], ["e"], ["f"], ["g"]])
    outcomes = torch.tensor([[0.0, 0, 0, 0], [1, 0, 0, 0]])
    gen = torch.Generator().manual_seed(0)
    g = grade([P, P], texts, outcomes, GradingSettings("random"), None, generator=gen)
    assert g.verdict_ok.tolist() == [[True, False, True, True], [False] * 4]
    assert g.rewards[0, 1] == 0.0 and (g.rewards[0, [0, 2, 3]] > 0).all()
    assert g.calls == 0 and not g.judged.any()


@pytest.mark.parametrize("method", ["grpo", "dapo", "ngrpo"])
def test_judge_free_methods_never_call_the_judge(method):
    judge = ByFirstLine()
    g = grade([P], ["e0\nb", "e1\nb"], torch.zeros(1, 2), GradingSettings(method), judge)
    assert judge.asked == [] and g.rewards.tolist() == [[0.0, 0.0]]


def test_unknown_method_fails_at_settings():
    with pytest.raises(KeyError, match="unknown method 'sgp'"):
        GradingSettings("sgp")


def test_scope_all_incorrect_grades_wrong_answers_in_mixed_groups():
    settings = GradingSettings("sgpo", ShapingParams(scope="all_incorrect"))
    g = grade([P], ["right", "e1\nb"], torch.tensor([[1.0, 0.0]]), settings, ByFirstLine())
    assert g.rewards.tolist()[0] == pytest.approx([1.0, f(0.5)])


def test_grading_a_subset_of_rows_judges_only_those_and_agrees_with_the_whole():
    """What TRL does: each process grades its own rows of the batch; the pieces make the whole."""
    texts = texts_of([["e0", "b", "c"], ["e2", "b", "c"], ["fail", "b"], [""], ["e1", "x"], ["e0", "y"], ["right"], ["e1"]])
    outcomes = torch.tensor([[0.0, 0, 0, 0], [0, 0, 1, 0]])
    settings = GradingSettings("sgpo", ShapingParams(scope="all_incorrect"))
    whole = grade([P, P], texts, outcomes, settings, ByFirstLine())
    rts, ok, calls = torch.zeros(2, 4), torch.zeros(2, 4, dtype=torch.bool), 0
    for lo, hi in [(0, 3), (3, 8)]:  # group 0 is split over the two "processes"
        judge = ByFirstLine()
        mine = grade({0: P, 1: P}, {i: texts[i] for i in range(lo, hi)}, outcomes, settings, judge, rows=range(lo, hi))
        assert mine.rewards is None and mine.advantages is None and mine.keep is None  # shaped after gathering
        assert mine.rows == [i for i in whole.rows if lo <= i < hi] and len(judge.asked) == mine.calls
        assert not mine.judged.view(-1)[[i for i in range(8) if not lo <= i < hi]].any()
        rts.view(-1)[lo:hi], ok.view(-1)[lo:hi] = mine.rts.view(-1)[lo:hi], mine.verdict_ok.view(-1)[lo:hi]
        calls += mine.calls
    assert torch.equal(rts, whole.rts) and torch.equal(ok, whole.verdict_ok) and calls == whole.calls
    shaped = shape(outcomes, rts, ok, settings)
    assert torch.equal(shaped.advantages, whole.advantages) and torch.equal(shaped.known, whole.known)


def test_reading_steps_needs_no_method():
    reading = StepReading("line", max_steps=2)
    assert request(P, "a\nb\nc", reading).steps == request(P, "a\nb\nc", GradingSettings("grpo", step_mode="line", max_steps=2)).steps
    judged = judge_rows([P], ["e1\nb\nc", ""], [0, 1], 2, StepReading("line"), ByFirstLine())
    assert judged.ok.tolist() == [True, False] and judged.rts.tolist() == pytest.approx([1 / 3, 0.0]) and judged.calls == 1
    with pytest.raises(ValueError, match="rts_unit='words'; choose one of: steps, tokens"):
        StepReading(rts_unit="words")


def test_step_generator_and_token_counter_are_the_shared_ones():
    assert torch.equal(torch.rand(3, generator=step_generator(2, 5)), torch.rand(3, generator=torch.Generator().manual_seed(2 * 7_919 + 5)))

    def whitespace_tokenizer(text, add_special_tokens):
        return {"input_ids": text.split()}

    assert token_counter(whitespace_tokenizer)("two words") == 2


def test_stats_of_parts_merge_into_the_stats_of_the_whole():
    """verl grades groups of unequal size bucket by bucket; merged, the parts' stats are the batch's."""
    texts = texts_of([["e0", "b"], ["e1", "b"], ["fail"], ["e0", "b", "c", "d"],
                      ["e1", "x"], ["right"], ["e1"], ["e0"],
                      ["e3", "a", "b", "c"], ["e0", "a"], [""], ["e1", "a", "b"]])
    outcomes = torch.tensor([[0.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    whole = grade([P] * 3, texts, outcomes, GradingSettings("sgpo"), ByFirstLine())
    full = grading_stats(outcomes, whole)
    parts = []
    for rows in ([0], [1, 2]):  # two parts of different sizes, as buckets of groups are
        sub = grade([P] * len(rows), [texts[4 * r + i] for r in rows for i in range(4)], outcomes[rows],
                    GradingSettings("sgpo"), ByFirstLine())
        parts.append((grading_stats(outcomes[rows], sub), len(rows), 4 * len(rows)))
    assert parts[0][0]["sgpo/rts_mean"] != parts[1][0]["sgpo/rts_mean"]  # weighting matters
    merged = merge_grading_stats(parts)
    assert merged.keys() == full.keys()
    assert merged == {k: pytest.approx(v, abs=1e-6) for k, v in full.items()}
    assert merged["sgpo/judged_responses"] == 8 and merged["groups/all_negative_frac"] == pytest.approx(2 / 3)
    empty = merge_grading_stats([])  # an empty batch still logs every statistic it can (no RTS), at zero
    assert empty.keys() == full.keys() - {"sgpo/rts_mean"} and not any(empty.values())


def test_stats_without_rts_leave_out_the_rts_mean():
    outcomes = torch.tensor([[0.0, 0, 1]])
    out = shape(outcomes, torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool), GradingSettings("grpo"))
    stats = grading_stats(outcomes, out, torch.zeros(1, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool))
    assert "sgpo/rts_mean" not in stats and stats["accuracy/train"] == pytest.approx(1 / 3)

"""Judges: the exact arithmetic rule judge, the noisy and caching wrappers, the failure rule, build_judge."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest
import torch
from pydantic import ValidationError

from sgpo.core import METHODS, ShapingParams, rts_from_steps
from sgpo.judges import (
    ERROR,
    INVALID,
    OK,
    TIMEOUT,
    ArithRuleJudge,
    CachedJudge,
    JudgeRequest,
    NoisyJudge,
    StepJudge,
    Verdict,
)
from sgpo.judges.config import JudgeConfig, build_judge
from sgpo.tasks.arith import ArithSpec, ArithTask
from sgpo.tasks.steps import split_steps

PROBLEM = "Start with 7. Add 5. Multiply by 3. Subtract 4."
# 7 + 5 = 12, 12 * 3 = 36, 36 - 4 = 32
REFERENCE = ["7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "Answer: 32"]


def first_error(steps: list[str], problem: str = PROBLEM) -> int:
    (verdict,) = ArithRuleJudge().judge([JudgeRequest(problem, steps)])
    assert verdict.status == OK and verdict.n_steps == len(steps)
    return verdict.first_error


# --------------------------------------------------------------------------- rule judge


@pytest.mark.parametrize(
    "steps, expected",
    [
        (REFERENCE, -1),
        # wrong arithmetic
        (["7 + 5 = 12", "12 * 3 = 35", "35 - 4 = 31", "Answer: 31"], 1),
        (["7 + 5 = 13", "13 * 3 = 39", "39 - 4 = 35", "Answer: 35"], 0),
        # missing lines: a true equation that skips an operation
        (["7 + 5 = 12", "36 - 4 = 32", "Answer: 32"], 1),
        (["7 + 5 = 12", "Answer: 12"], 1),
        # extra lines: a true equation that is not in the chain, or comes after the last operation
        (["7 + 5 = 12", "12 + 1 = 13", "13 * 3 = 39", "39 - 4 = 35", "Answer: 35"], 1),
        (REFERENCE + ["32 + 1 = 33"], 4),
        (["7 + 5 = 12", "Check: 7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "Answer: 32"], -1),  # a repeat is fine
        # garbage
        (["7 + 5 = 12", "12 3 =", "36 - 4 = 32", "Answer: 32"], 1),
        (["7 + 5 = 12", "12 * 3 = 36", "#$%^ 3x!!", "Answer: 32"], 2),
        # right lines in the wrong order
        (["12 * 3 = 36", "7 + 5 = 12", "36 - 4 = 32", "Answer: 32"], 0),
        (["7 + 5 = 12", "36 - 4 = 32", "12 * 3 = 36", "Answer: 32"], 1),
        # wrong answer line
        (["7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "Answer: 36"], 3),
        (["7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "The answer is 31."], 3),
        # prose lines without numbers are neither right nor wrong
        (["Let's go step by step.", "7 + 5 = 12", "Next, multiply.", "12 * 3 = 36", "36 - 4 = 32", "So the answer is 32."], -1),
        (["Let's go.", "Hmm.", "7 + 5 = 11", "Answer: 29"], 2),
        # step labels on their own line are not errors
        (["Step 1:", "7 + 5 = 12", "### Step 2.", "12 * 3 = 36", "3) then subtract", "36 - 4 = 32", "Answer: 32"], -1),
        # swapped operands of + and * are the same operation; of - they are not
        (["5 + 7 = 12", "3 * 12 = 36", "36 - 4 = 32", "Answer: 32"], -1),
        (["7 + 5 = 12", "12 * 3 = 36", "4 - 36 = -32", "Answer: -32"], 2),
        # several equations in one step
        (["7 + 5 = 12, then 12 * 3 = 36", "36 - 4 = 32", "Answer: 32"], -1),
        (["7 + 5 = 12 and 12 * 3 = 37", "37 - 4 = 33", "Answer: 33"], 0),
        # "Start with N": the right N is fine, a wrong N is the error
        (["We start with 7.", "7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "Answer: 32"], -1),
        (["Start with 8.", "8 + 5 = 13"], 0),
        # other operator spellings
        (["7 + 5 = 12", "12 x 3 = 36", "36 - 4 = 32", "Answer: 32"], -1),
        (["7 + 5 = 12", r"$12 \times 3 = 36$", "36 - 4 = 32", r"\boxed{32}"], -1),
        # a truncated response: no error in what is there (RTS places it at the last step)
        (["7 + 5 = 12", "12 * 3 = 36"], -1),
    ],
)
def test_rule_judge_first_error(steps, expected):
    assert first_error(steps) == expected


def test_rule_judge_on_real_looking_model_outputs():
    response = "Sure! Let's solve this.\n\n7 + 5 = 12\n12 * 3 = 36\n36 - 4 = 33\nAnswer: 33"
    assert first_error(split_steps(response, "line")) == 3
    response = "Start with 7. Add 5. Multiply by 3. Subtract 4.\n7+5=12\n12*3=36\n36-4=32\n**Answer:** 32"
    assert first_error(split_steps(response, "line")) == -1
    response = "7 + 5 = 12\n12 * 3 = 36\n36 - 4 = 32\nAnswer: 32.5"  # not an integer answer
    assert first_error(split_steps(response, "line")) == 3


def test_rule_judge_division():
    problem = "Start with 12. Divide by 4. Add 3."
    assert first_error(["12 / 4 = 3", "3 + 3 = 6", "Answer: 6"], problem) == -1
    assert first_error(["12 ÷ 4 = 3", "3 + 3 = 6", "Answer: 6"], problem) == -1
    assert first_error(["12 / 5 = 2", "2 + 3 = 5", "Answer: 5"], problem) == 0  # inexact: not an integer
    assert first_error(["4 / 12 = 3", "3 + 3 = 6", "Answer: 6"], problem) == 0  # division does not commute


def test_rule_judge_empty_response_and_bad_problem():
    assert ArithRuleJudge().judge([JudgeRequest(PROBLEM, [])]) == [Verdict(-1, 0, OK, "no error found")]
    (v,) = ArithRuleJudge().judge([JudgeRequest("What is the capital of France?", ["Paris", "2 + 2 = 4"])])
    assert v.status == INVALID and not v.ok and v.first_error == -1 and v.n_steps == 2


def test_rule_judge_keeps_request_order():
    requests = [JudgeRequest(PROBLEM, REFERENCE[:k] + ["1 + 1 = 3"]) for k in range(4)]
    assert [v.first_error for v in ArithRuleJudge().judge(requests)] == [0, 1, 2, 3]


def test_rule_judge_finds_the_corrupted_line_of_generated_solutions():
    rng = random.Random(0)
    task = ArithTask(ArithSpec(n_ops=5, ops=("add", "sub", "mul", "div")), seed=3)
    for problem in task.problems("train", 40):
        lines = problem.reference.split("\n")
        assert first_error(lines, problem.question) == -1
        k = rng.randrange(len(lines) - 1)  # an equation line
        lhs, rhs = lines[k].split(" = ")
        bad = lines[:k] + [f"{lhs} = {int(rhs) + rng.choice([-2, -1, 1, 2])}"] + lines[k + 1 :]
        assert first_error(bad, problem.question) == k


def test_judges_follow_the_protocol():
    for judge in (ArithRuleJudge(), NoisyJudge(ArithRuleJudge(), 0.1), CachedJudge(ArithRuleJudge())):
        assert isinstance(judge, StepJudge)
    with pytest.raises(ValueError, match="other than 'ok'"):
        Verdict.failed(3, OK)
    v = Verdict.failed(3, TIMEOUT, "slow")
    assert (v.first_error, v.n_steps, v.status, v.raw, v.ok) == (-1, 3, TIMEOUT, "slow", False)


# --------------------------------------------------------------------------- stub judges


@dataclass
class Fixed:
    """Answers every request with a copy of ``verdict``; records what it was asked."""

    verdict: Verdict
    calls: list[list[JudgeRequest]] = field(default_factory=list)

    def judge(self, requests):
        self.calls.append(list(requests))
        return [self.verdict for _ in requests]


@dataclass
class ByProblem:
    """first_error = len(problem) % n_steps, failed (error) for problems starting with 'fail'."""

    calls: list[list[JudgeRequest]] = field(default_factory=list)

    def judge(self, requests):
        self.calls.append(list(requests))
        return [Verdict.failed(len(r.steps), ERROR) if r.problem.startswith("fail")
                else Verdict(len(r.problem) % len(r.steps), len(r.steps)) for r in requests]


def req(problem: str, n_steps: int = 4, reference: str | None = None) -> JudgeRequest:
    return JudgeRequest(problem, [f"s{i}" for i in range(n_steps)], reference)


# --------------------------------------------------------------------------- noisy judge


@pytest.mark.parametrize("mode", ["shift", "random"])
@pytest.mark.parametrize("p", [0.1, 0.3])
def test_noisy_judge_empirical_rate(mode, p):
    n = 20_000
    inner = Fixed(Verdict(2, 5))
    judge = NoisyJudge(inner, p, mode, seed=1)
    out = judge.judge([req("q", 5)] * n)
    changed = sum(v.first_error != 2 for v in out)
    assert changed == judge.corrupted
    # Binomial(n, p): sd = sqrt(p (1 - p) / n) <= 0.0033; allow 5 sd.
    assert abs(changed / n - p) < 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("mode", ["shift", "random"])
@pytest.mark.parametrize("first, K", [(-1, 1), (0, 1), (-1, 4), (0, 4), (2, 4), (3, 4)])
def test_noisy_verdicts_really_differ_and_stay_in_range(mode, first, K):
    judge = NoisyJudge(Fixed(Verdict(first, K, OK, "raw")), 1.0, mode, seed=0)
    out = judge.judge([req("q", K)] * 300)
    pos = lambda e: K if e < 0 else e  # -1 ("no error") sits after the last step
    for v in out:
        assert v.first_error != first
        assert -1 <= v.first_error <= K - 1
        assert (v.n_steps, v.status) == (K, OK)
        if mode == "shift":
            assert abs(pos(v.first_error) - pos(first)) == 1
    if mode == "random":  # every other position is reachable
        assert {v.first_error for v in out} == {-1, *range(K)} - {first}


def test_noisy_shift_at_the_edges():
    # K = 1: the only wrong answer for "error at step 0" is "no error" and vice versa.
    assert {v.first_error for v in NoisyJudge(Fixed(Verdict(0, 1)), 1.0, "shift").judge([req("q", 1)] * 50)} == {-1}
    assert {v.first_error for v in NoisyJudge(Fixed(Verdict(-1, 1)), 1.0, "shift").judge([req("q", 1)] * 50)} == {0}
    # "no error" in 4 steps moves to the last step; step 0 moves to step 1.
    assert {v.first_error for v in NoisyJudge(Fixed(Verdict(-1, 4)), 1.0, "shift").judge([req("q")] * 50)} == {3}
    assert {v.first_error for v in NoisyJudge(Fixed(Verdict(0, 4)), 1.0, "shift").judge([req("q")] * 50)} == {1}


def test_noisy_judge_is_seeded():
    requests = [req(f"q{i}", 6) for i in range(200)]

    def run(seed):
        judge = NoisyJudge(ByProblem(), 0.5, "random", seed)
        return [v.first_error for v in judge.judge(requests)] + [v.first_error for v in judge.judge(requests)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_noisy_judge_leaves_failed_and_empty_verdicts_alone():
    for status in (INVALID, ERROR, TIMEOUT):
        failed = Verdict.failed(4, status, "boom")
        judge = NoisyJudge(Fixed(failed), 1.0, "random")
        assert judge.judge([req("q")] * 20) == [failed] * 20
        assert judge.corrupted == 0
    empty = Verdict(-1, 0)
    assert NoisyJudge(Fixed(empty), 1.0).judge([req("q", 0)] * 5) == [empty] * 5


def test_noisy_judge_p_zero_and_bad_arguments():
    judge = NoisyJudge(Fixed(Verdict(1, 4)), 0.0)
    assert [v.first_error for v in judge.judge([req("q")] * 100)] == [1] * 100
    with pytest.raises(ValueError, match="p must be in"):
        NoisyJudge(Fixed(Verdict(1, 4)), 1.5)
    with pytest.raises(ValueError, match="unknown noise mode 'flip'.*shift, random"):
        NoisyJudge(Fixed(Verdict(1, 4)), 0.1, "flip")


# --------------------------------------------------------------------------- cached judge


def test_cache_hits_misses_and_duplicates_in_a_batch():
    inner = ByProblem()
    judge = CachedJudge(inner)
    a, b, c = req("a"), req("bb"), req("ccc")
    first = judge.judge([a, b, a, a])
    assert [v.first_error for v in first] == [1 % 4, 2 % 4, 1 % 4, 1 % 4]
    assert inner.calls == [[a, b]]  # duplicates judged once
    assert (judge.misses, judge.hits) == (2, 2)
    second = judge.judge([b, c, a])
    assert inner.calls[-1] == [c]
    assert [v.first_error for v in second] == [2, 3, 1]
    assert (judge.misses, judge.hits) == (3, 4)
    judge.judge([a, b, c])
    assert len(inner.calls) == 2  # nothing new: no call at all
    assert judge.hits + judge.misses == 4 + 3 + 3


def test_cache_key_is_problem_steps_and_reference():
    inner = ByProblem()
    judge = CachedJudge(inner)
    judge.judge([req("a"), req("a", 5), req("a", reference="ref"), JudgeRequest("a", ["s0", "s1", "s2", "X"])])
    assert len(inner.calls[0]) == 4


def test_failed_verdicts_are_not_cached():
    inner = ByProblem()
    judge = CachedJudge(inner)
    bad, good = req("fail-1"), req("ok")
    assert [v.status for v in judge.judge([bad, good])] == [ERROR, OK]
    assert [v.status for v in judge.judge([bad, good])] == [ERROR, OK]
    assert inner.calls == [[bad, good], [bad]]  # the failure is asked again, the success is not


def test_cache_evicts_least_recently_used():
    inner = ByProblem()
    judge = CachedJudge(inner, max_size=2)
    a, b, c = req("a"), req("bb"), req("ccc")
    judge.judge([a])
    judge.judge([b])
    judge.judge([a])  # a is now more recent than b
    judge.judge([c])  # evicts b
    assert inner.calls == [[a], [b], [c]]
    judge.judge([a])
    assert inner.calls[-1] == [c]  # a still cached
    judge.judge([b])
    assert inner.calls[-1] == [b]  # b was evicted


# --------------------------------------------------------------------------- failure rule


def test_failed_verdict_leaves_reward_at_outcome():
    """End to end: rule judge verdicts -> RTS -> METHODS['sgpo'] rewards; the failed one stays 0."""
    steps = [
        ["7 + 5 = 13", "Answer: 13"],  # error at step 0 of 2
        ["7 + 5 = 12", "12 * 3 = 35", "35 - 4 = 31", "Answer: 31"],  # error at step 1 of 4
        ["7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 31", "Answer: 31"],  # error at step 2 of 4
    ]
    requests = [JudgeRequest(PROBLEM, s) for s in steps] + [JudgeRequest("no chain here", ["1 + 1 = 3"])]
    verdicts = ArithRuleJudge().judge(requests)
    assert [v.status for v in verdicts] == [OK, OK, OK, INVALID]
    first = torch.tensor([[v.first_error for v in verdicts]])
    n_steps = torch.tensor([[v.n_steps for v in verdicts]])
    ok = torch.tensor([[v.ok for v in verdicts]])
    outcomes = torch.zeros(1, 4)
    out = METHODS.get("sgpo")(outcomes, rts=rts_from_steps(first, n_steps), verdict_ok=ok,
                              params=ShapingParams(mapping="linear"))
    assert out.rewards[0].tolist() == pytest.approx([0.5 * 0 / 2, 0.5 * 1 / 4, 0.5 * 2 / 4, 0.0])


# --------------------------------------------------------------------------- build_judge


def test_build_judge_default_is_cached_rule_judge():
    judge = build_judge(JudgeConfig(), ArithTask())
    assert isinstance(judge, CachedJudge) and isinstance(judge.inner, ArithRuleJudge)
    assert judge.max_size == JudgeConfig().cache_size
    verdicts = judge.judge([JudgeRequest(PROBLEM, REFERENCE), JudgeRequest(PROBLEM, ["7 + 5 = 11"])])
    assert [v.first_error for v in verdicts] == [-1, 0]


def test_build_judge_wraps_noise_inside_cache():
    cfg = JudgeConfig(noise_p=0.25, noise_mode="random", noise_seed=5, cache_size=10)
    judge = build_judge(cfg, ArithTask())
    assert isinstance(judge, CachedJudge) and judge.max_size == 10
    noisy = judge.inner
    assert isinstance(noisy, NoisyJudge) and isinstance(noisy.inner, ArithRuleJudge)
    assert (noisy.p, noisy.mode) == (0.25, "random")
    assert noisy.rng.random() == random.Random(5).random()


def test_build_judge_without_wrappers():
    judge = build_judge(JudgeConfig(cache=False), ArithTask())
    assert isinstance(judge, ArithRuleJudge)
    judge = build_judge(JudgeConfig(cache=False, noise_p=1.0), ArithTask())
    assert isinstance(judge, NoisyJudge)
    assert judge.judge([JudgeRequest(PROBLEM, REFERENCE)])[0].first_error != -1  # p = 1 always corrupts


def test_build_judge_needs_a_task_with_a_rule_judge():
    with pytest.raises(ValueError, match="rule judge"):
        build_judge(JudgeConfig(), None)

    class NoRule:
        name = "words"

        def rule_judge(self):
            return None

    with pytest.raises(ValueError, match="'words'"):
        build_judge(JudgeConfig(), NoRule())


def test_judge_config_validation():
    with pytest.raises(ValidationError):
        JudgeConfig(nois_p=0.1)  # unknown key
    with pytest.raises(ValidationError):
        JudgeConfig(noise_p=1.5)
    with pytest.raises(ValidationError):
        JudgeConfig(noise_mode="flip")
    with pytest.raises(ValidationError):
        JudgeConfig(kind="oracle")
    with pytest.raises(ValidationError):
        JudgeConfig(max_steps=0)

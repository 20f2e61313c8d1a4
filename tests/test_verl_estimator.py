"""The verl path's maths without verl: sgpo's reward function + the pure ``sgpo`` estimator equal
``sgpo.grading.grade`` (the native trainer's grading step). The same holds inside verl in tests/verl_venv."""

from __future__ import annotations

import random

import pytest
import torch
from test_new_method import half_rts

from sgpo.core import METHODS, ShapingParams
from sgpo.errors import ConfigError
from sgpo.grading import GradingSettings, grade, grading_stats
from sgpo.integrations.verl.estimator import (
    UNKNOWN_SCORE,
    group_rows,
    options_from_config,
    session_rows,
    sgpo_verl_advantages,
    verl_methods,
)
from sgpo.integrations.verl.reward import compute_score
from sgpo.tasks.arith import ArithRuleJudge, ArithTask
from sgpo.tasks.base import Problem

G = 4


def wrong_at(problem: Problem, k: int) -> str:
    """The reference solution with step ``k`` made false (so the answer is wrong too)."""
    lines = problem.reference.split("\n")
    lines[k] = lines[k].rsplit("=", 1)[0] + f"= {int(lines[k].rsplit('=', 1)[1]) + 1}"
    return "\n".join(lines[:-1] + [f"Answer: {int(problem.answer) + 7}"])


def no_answer(problem: Problem) -> str:
    """Every step right, no answer line: wrong, and the judge finds no error (RTS = (K-1)/K)."""
    return "\n".join(problem.reference.split("\n")[:-1])


def scenario():
    """Problems [N] and responses [N * G]: all-negative (graded), mixed (wrong members graded by the
    reward function, dropped by the estimator, and one without steps, outside the scope),
    all-positive, all-negative with failed verdicts only (a question the rule judge cannot read, and
    a response without steps), all-negative with a no-error verdict, graded ones and a response
    without steps (an unknown reward among known ones)."""
    p = ArithTask().problems("train", 4)
    broken = Problem("broken", "Compute the sum of the digits.", "no reference", p[3].answer)
    problems = [p[0], p[1], p[2], broken, p[3]]
    texts = [
        wrong_at(p[0], 0), wrong_at(p[0], 1), wrong_at(p[0], 2), wrong_at(p[0], 3),
        p[1].reference, wrong_at(p[1], 0), "", no_answer(p[1]),
        p[2].reference, p[2].reference, p[2].reference, p[2].reference,
        wrong_at(p[3], 1), wrong_at(p[3], 2), "", "Answer: 1",
        no_answer(p[3]), wrong_at(p[3], 0), wrong_at(p[3], 3), "   ",
    ]
    return problems, texts


def verl_batch(problems, texts, scores, seed=0, T=12):
    """What verl's advantage step sees: rows shuffled (groups interleaved), the score on each row's
    last response token, responses of different lengths, string uids."""
    rng = random.Random(seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    uids = [f"uid-{i // G}-{problems[i // G].id}" for i in order]
    rewards = torch.zeros(len(order), T)
    mask = torch.zeros(len(order), T)
    for row, i in enumerate(order):
        length = rng.randint(1, T)
        mask[row, :length] = 1
        rewards[row, length - 1] = scores[i]
    return order, rewards, mask, uids


def reward_fn_scores(problems, texts, **kwargs):
    out = []
    for i, text in enumerate(texts):
        p = problems[i // G]
        out.append(compute_score("sgpo/arith", text, p.answer, {"question": p.question, "reference": p.reference},
                                 **kwargs))
    return out


@pytest.mark.parametrize("scale", ["group", "none"])
@pytest.mark.parametrize("mapping", [{}, {"mapping": "linear", "mapping_params": {"scale": 0.5}}])
def test_reward_function_and_estimator_equal_native_grading(scale, mapping):
    problems, texts = scenario()
    results = reward_fn_scores(problems, texts, **mapping)
    outcomes = torch.tensor([r["acc"] for r in results]).view(-1, G)
    params = ShapingParams(scale=scale, mapping=mapping.get("mapping", "logistic"),
                           mapping_params=mapping.get("mapping_params", {}))
    native = grade(problems, texts, outcomes, GradingSettings("sgpo", params, "line"), judge=ArithRuleJudge())
    # the scenario covers what it claims
    assert outcomes.tolist()[2] == [1, 1, 1, 1] and outcomes[[0, 3, 4]].sum() == 0 and outcomes[1].sum() == 1
    assert not native.verdict_ok[3].any() and native.verdict_ok[0].all()
    assert native.verdict_ok[4].tolist() == [True, True, True, False]
    assert any(r["score"] > 0 for r in results[5:8]), "mixed group's wrong responses were graded by the reward fn"
    assert [r["judge_status"] for r in results[12:16]] == ["invalid", "invalid", "no_steps", "invalid"]
    assert results[19]["judge_status"] == results[6]["judge_status"] == "no_steps"
    assert results[19]["score"] == UNKNOWN_SCORE

    order, rewards, mask, uids = verl_batch(problems, texts, [r["score"] for r in results])
    out = sgpo_verl_advantages(rewards, mask, uids, scale=scale)
    expected = native.advantages.reshape(-1)[order]
    torch.testing.assert_close(out.advantages, expected[:, None] * mask)
    torch.testing.assert_close(out.rewards, native.rewards.reshape(-1)[order])
    assert out.rewards[[order.index(i) for i in (5, 6, 7)]].tolist() == [0, 0, 0]  # grades dropped in the mixed group
    assert out.stats["sgpo/verl_extra_judged"] == 3  # the mixed group's three wrong responses
    assert out.stats["sgpo/verl_dropped_grades"] == sum(r["score"] > 0 for r in results[5:8])
    assert out.stats["sgpo/judged_responses"] == 12
    assert out.stats["sgpo/judge_failures"] == 5
    assert out.known.tolist() == [i not in (12, 13, 14, 15, 19) for i in order]
    assert out.stats["groups/all_negative_frac"] == pytest.approx(3 / 5)


def test_unequal_group_sizes_are_handled_per_group():
    problems, texts = scenario()
    scores = [r["score"] for r in reward_fn_scores(problems, texts)]
    # drop two rows of group 0 and one of group 4: sizes 2, 4, 4, 4, 3
    keep = [i for i in range(len(texts)) if i not in (1, 3, 18)]
    rewards = torch.tensor([scores[i] for i in keep]).unsqueeze(1)
    uids = [i // G for i in keep]
    out = sgpo_verl_advantages(rewards, torch.ones_like(rewards), uids)
    for g in set(uids):
        rows = [r for r, u in enumerate(uids) if u == g]
        sub = sgpo_verl_advantages(rewards[rows], torch.ones(len(rows), 1), [0] * len(rows))
        torch.testing.assert_close(out.advantages[rows], sub.advantages)
    # statistics over buckets of sizes 2, 3 and 4: weighted by responses and groups, counts added up
    correct = [scores[i] == 1.0 for i in keep]
    assert out.stats["accuracy/train"] == pytest.approx(sum(correct) / len(keep))
    assert out.stats["groups/all_negative_frac"] == pytest.approx(3 / 5)
    assert out.stats["sgpo/judged_responses"] == 2 + 4 + 3  # the wrong responses left in the all-negative groups
    assert out.stats["reward/mean"] == pytest.approx(out.rewards.mean().item())
    with pytest.raises(ValueError, match="equal size"):
        sgpo_verl_advantages(rewards, torch.ones_like(rewards), uids, scale="batch")


def test_single_response_group_has_no_signal():
    out = sgpo_verl_advantages(torch.tensor([[0.0, 0.7], [0.0, 1.0]]), torch.ones(2, 2), ["a", "b"])
    assert out.advantages.abs().sum() == 0


def test_group_rows_and_options():
    assert group_rows(["b", "a", "b", "c", "a"]) == [[0, 2], [1, 4], [3]]
    assert options_from_config({"norm_adv_by_std_in_grpo": False}) == {"method": "sgpo", "scope": "all_negative",
                                                                         "scale": "none", "eps": 1e-6}
    assert options_from_config({"sgpo": {"method": "random"}})["method"] == "random"
    assert options_from_config({"sgpo": {"scope": "all_incorrect"}})["scope"] == "all_incorrect"
    with pytest.raises(ValueError, match="use_kl_in_reward"):
        options_from_config({"use_kl_in_reward": True})
    with pytest.raises(ValueError, match="unknown keys"):
        options_from_config({"sgpo": {"scop": "all_negative"}})
    with pytest.raises(ConfigError, match="filter_groups.metric=acc"):
        options_from_config({"filter_groups": {"enable": True, "metric": "acc"}})
    for ok in ({"enable": True, "metric": "reward"}, {"enable": True, "metric": "score"}, {"enable": False, "metric": "acc"}):
        assert options_from_config({"filter_groups": ok})["scope"] == "all_negative"


def test_session_rows_pick_each_sessions_last_output():
    keys = ["a_b_0_1", "a_b_0_0", "c_1_0", "a_b_1_0", "c_1_2", "c_1_1"]  # uids may hold underscores
    assert session_rows(keys) == ([0, 4, 3], [0, 0, 1, 2, 1, 1])
    with pytest.raises(ValueError, match="not '\\{uid\\}"):
        session_rows(["u_0"])


def test_all_incorrect_scope_keeps_every_grade():
    problems, texts = scenario()
    results = reward_fn_scores(problems, texts)
    outcomes = torch.tensor([r["acc"] for r in results]).view(-1, G)
    params = ShapingParams(scope="all_incorrect")
    native = grade(problems, texts, outcomes, GradingSettings("sgpo", params, "line"), judge=ArithRuleJudge())
    rewards = torch.tensor([r["score"] for r in results]).unsqueeze(1)
    out = sgpo_verl_advantages(rewards, torch.ones_like(rewards), [i // G for i in range(len(texts))],
                               scope="all_incorrect")
    torch.testing.assert_close(out.advantages[:, 0], native.advantages.reshape(-1))
    assert out.stats["sgpo/verl_extra_judged"] == 0


def test_reward_function_fields_and_errors():
    problems, texts = scenario()
    p = problems[0]
    info = {"question": p.question, "reference": p.reference}
    right = compute_score("sgpo/arith", p.reference, p.answer, info)
    assert right == {"score": 1.0, "acc": 1.0, "first_error": -1, "n_steps": 5, "rts": 0.0, "judge_status": "skipped",
                     "judged": 0, "verify_status": "correct"}
    bad = compute_score("sgpo/arith", wrong_at(p, 2), p.answer, info)
    assert (bad["acc"], bad["first_error"], bad["n_steps"], bad["judged"]) == (0.0, 2, 5, 1)
    assert bad["rts"] == pytest.approx(0.4)
    assert 0 < bad["score"] < 1
    with pytest.raises(ValueError, match="unknown sgpo reward_kwargs"):
        compute_score("sgpo/arith", p.reference, p.answer, info, jugde_config="x.yaml")
    with pytest.raises(ValueError, match="extra_info\\['question'\\]"):
        compute_score("sgpo/arith", wrong_at(p, 1), p.answer, {})


def test_verl_dataset_rows_feed_the_reward_function(tmp_path):
    from datasets import Dataset

    from sgpo.cli import main

    assert main(["data", "verl", "--task", "arith", "--train", "3", "--val", "2", "--out", str(tmp_path)]) == 0
    train = Dataset.from_parquet(str(tmp_path / "train.parquet"))
    assert len(train) == 3 and len(Dataset.from_parquet(str(tmp_path / "val.parquet"))) == 2
    row = train[0]
    assert row["prompt"] == [{"role": "user", "content": row["extra_info"]["question"]}]
    reference = row["extra_info"]["reference"]
    ok = compute_score(row["data_source"], reference, row["reward_model"]["ground_truth"], row["extra_info"])
    assert ok["score"] == 1.0
    lines = reference.split("\n")
    bad = compute_score(row["data_source"], "\n".join(lines[:1] + ["1 + 1 = 3"]), row["reward_model"]["ground_truth"],
                        row["extra_info"])
    assert (bad["acc"], bad["first_error"], bad["n_steps"]) == (0.0, 1, 2)


def test_concurrent_calls_share_judge_batches():
    """verl scores responses from a thread pool: the judge gets them in batches, one batch at a time,
    and every caller gets its own verdict."""
    import threading
    import time

    from sgpo.integrations.verl.batching import Batcher
    from sgpo.judges.base import JudgeRequest, Verdict

    class SlowJudge:
        def __init__(self):
            self.batches, self.active, self.overlap = [], 0, False

        def judge(self, requests):
            self.active += 1
            self.overlap |= self.active > 1
            time.sleep(0.05)
            self.batches.append(len(requests))
            self.active -= 1
            return [Verdict(int(r.problem) % len(r.steps), len(r.steps)) for r in requests]

    judge = SlowJudge()
    batcher = Batcher(judge, GradingSettings("sgpo", ShapingParams(), "line"), wait_s=0.02)
    slots = [None] * 24

    def ask(i):
        slots[i] = batcher.ask(JudgeRequest(str(i), ["a", "b", "c"]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [s.verdict.first_error for s in slots] == [i % 3 for i in range(24)]
    assert [s.rts for s in slots] == pytest.approx([(i % 3) / 3 for i in range(24)])
    assert sum(judge.batches) == 24 and len(judge.batches) < 24 and not judge.overlap


def test_validation_rows_are_verified_not_judged():
    problems, _ = scenario()
    p = problems[0]
    for split, judged in (("validation", 0), ("test", 0), ("train", 1)):
        out = compute_score("sgpo/arith", wrong_at(p, 1), p.answer, {"question": p.question, "split": split})
        assert (out["judged"], out["acc"]) == (judged, 0.0)
        assert out["judge_status"] == ("skipped" if not judged else "ok")
    out = compute_score("sgpo/arith", wrong_at(p, 1), p.answer, {"question": p.question, "split": "test"},
                        unjudged_splits=[])
    assert out["judged"] == 1


def test_math_without_a_judge_config_says_what_to_set():
    with pytest.raises(ValueError, match="cannot build its step judge"):
        compute_score("sgpo/math", "\\boxed{2}", "3", {"question": "1 + 1?"})


def test_a_verl_hosted_judge_needs_the_llm_http_kind():
    """With ``reward_router_address`` (verl hosts a judge model), a judge of another kind is refused in one line."""
    problems, _ = scenario()
    p = problems[0]
    with pytest.raises(ConfigError, match="verl hosts a judge model .* judge.kind=rule") as e:
        compute_score("sgpo/arith", wrong_at(p, 1), p.answer, {"question": p.question},
                      reward_router_address="127.0.0.1:1", judge={"kind": "rule"})
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ methods other than sgpo


def native_and_verl(method, params, monkeypatch=None, **reward_kwargs):
    """The scenario scored by the reward function for ``method``, its verl advantages and native ``grade``."""
    problems, texts = scenario()
    results = reward_fn_scores(problems, texts, method=method, **reward_kwargs)
    outcomes = torch.tensor([r["acc"] for r in results]).view(-1, G)
    order, rewards, mask, uids = verl_batch(problems, texts, [r["score"] for r in results], seed=5)
    out = sgpo_verl_advantages(rewards, mask, uids, scope=params.scope, scale=params.scale, method=method)
    native = grade(problems, texts, outcomes, GradingSettings(method, params, "line"), judge=ArithRuleJudge(),
                   generator=torch.Generator().manual_seed(0))
    return results, order, mask, out, native, outcomes


def test_options_refuse_a_method_verl_cannot_run_in_one_line():
    assert verl_methods() == ["grpo", "random", "sgpo"]
    for method, why in (("dapo", "dapo over-samples prompts"), ("ngrpo", "ngrpo computes its own advantages")):
        with pytest.raises(ConfigError, match=f"algorithm.sgpo.method={method}: verl runs only methods that change "
                                              f"rewards \\(grpo, random, sgpo\\); {why}") as e:
            options_from_config({"sgpo": {"method": method}})
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="algorithm.sgpo.method='sgp' is not a registered method"):
        options_from_config({"sgpo": {"method": "sgp"}})
    problems, texts = scenario()
    p = problems[0]
    with pytest.raises(ConfigError, match="reward_kwargs.method=ngrpo: verl runs only"):
        compute_score("sgpo/arith", wrong_at(p, 1), p.answer, {"question": p.question}, method="ngrpo")


@pytest.fixture
def half_rts_registered():
    # tests/test_new_method.py's method (judged wrong responses in scope get r = RTS / 2), registered here too.
    METHODS.register("half_rts", judges=True, reward_only=True)(half_rts)
    yield "half_rts"
    METHODS.unregister("half_rts")


def test_verl_refuses_a_method_not_declared_reward_only_and_one_whose_declaration_is_false():
    """``reward_only`` is the author's word that rewards are per response; verl also checks the part it can:
    that the advantages are the group-normalised rewards."""
    METHODS.register("undeclared", judges=True)(half_rts)
    METHODS.register("own_adv", reward_only=True)(METHODS.get("ngrpo").fn)  # a false declaration
    try:
        assert "undeclared" not in verl_methods()
        with pytest.raises(ConfigError, match="undeclared is not registered with reward_only=True") as e:
            options_from_config({"sgpo": {"method": "undeclared"}})
        assert "\n" not in str(e.value)
        with pytest.raises(ConfigError, match="own_adv: registered with reward_only=True, but its advantages are not"):
            options_from_config({"sgpo": {"method": "own_adv"}})
    finally:
        METHODS.unregister("undeclared")
        METHODS.unregister("own_adv")


@pytest.mark.parametrize("scale", ["group", "none"])
def test_a_method_registered_in_a_test_runs_through_verl(half_rts_registered, scale):
    """A method that only maps RTS differently needs no verl code: the reward function scores with it and
    the estimator runs it, equal to native grading with it."""
    assert "half_rts" in verl_methods()
    params = ShapingParams(scale=scale)
    results, order, mask, out, native, _ = native_and_verl("half_rts", params)
    graded = [r for r in results if r["judge_status"] == "ok"]
    assert graded and all(r["score"] == pytest.approx(r["rts"] / 2) for r in graded)  # its mapping, not f(RTS)
    torch.testing.assert_close(out.advantages, native.advantages.reshape(-1)[order][:, None] * mask)
    torch.testing.assert_close(out.rewards, native.rewards.reshape(-1)[order])
    assert out.advantages[[order.index(i) for i in range(4)]].abs().sum() > 0  # the all-negative group learns
    assert out.stats["sgpo/judged_responses"] == 12 and out.stats["sgpo/verl_extra_judged"] == 3


def test_random_through_verl_equals_native_grade_on_the_same_draws(monkeypatch):
    """``random`` in verl: the reward function draws the RTS (no judge), seeded by the response, for exactly
    the wrong responses with steps; the estimator then equals native ``grade`` given those draws."""
    params = ShapingParams(mapping="linear", mapping_params={"scale": 0.5})  # score = RTS / 2 exactly: the draw is readable
    problems, texts = scenario()
    results = reward_fn_scores(problems, texts, method="random", mapping="linear", mapping_params={"scale": 0.5})
    outcomes = torch.tensor([r["acc"] for r in results]).view(-1, G)
    status = [r["judge_status"] for r in results]
    assert all(r["judged"] == 0 for r in results)  # no judge call
    wrong_with_steps = [i for i, r in enumerate(results) if r["acc"] == 0 and texts[i].strip()]
    assert [i for i, s in enumerate(status) if s == "drawn"] == wrong_with_steps
    assert [status[i] for i in (6, 14, 19)] == ["no_steps"] * 3
    drawn = torch.tensor([r["score"] * 2 for r in results]).view(-1, G)
    assert len({round(x, 6) for x in drawn.view(-1)[wrong_with_steps].tolist()}) > 10  # draws, not a constant

    seen = []

    def the_same_draws(shape, generator=None, device=None):
        seen.append(tuple(shape))
        return drawn.clone()

    with monkeypatch.context() as m:
        m.setattr(torch, "rand", the_same_draws)  # the native control's one draw: [N, G] uniform RTS
        native = grade(problems, texts, outcomes, GradingSettings("random", params, "line"),
                       generator=torch.Generator().manual_seed(0))
    assert seen == [(5, G)]
    order, rewards, mask, uids = verl_batch(problems, texts, [r["score"] for r in results], seed=7)
    out = sgpo_verl_advantages(rewards, mask, uids, method="random")
    torch.testing.assert_close(out.advantages, native.advantages.reshape(-1)[order][:, None] * mask)
    torch.testing.assert_close(out.rewards, native.rewards.reshape(-1)[order])
    assert out.known.tolist() == native.known.reshape(-1)[order].tolist()
    assert not native.known[4, 3] and native.known[3, :2].all()  # no steps: unknown; with steps: drawn, known
    # the same statistics as native grading (no judge: nothing judged), bar the RTS mean the estimator cannot see
    full = grading_stats(outcomes, native)
    assert {k: out.stats[k] for k in full if k != "sgpo/rts_mean"} == {
        k: pytest.approx(v, abs=1e-6) for k, v in full.items() if k != "sgpo/rts_mean"}
    assert out.stats["sgpo/judged_responses"] == 0 and out.stats["sgpo/verl_extra_judged"] == 0
    assert out.stats["sgpo/verl_dropped_grades"] == 2  # the mixed group's two drawn wrong responses

    again = reward_fn_scores(problems, texts, method="random", mapping="linear", mapping_params={"scale": 0.5})
    other = reward_fn_scores(problems, texts, method="random", mapping="linear", mapping_params={"scale": 0.5}, seed=1)
    assert [r["score"] for r in again] == [r["score"] for r in results]  # reproducible
    assert sum(other[i]["score"] != results[i]["score"] for i in wrong_with_steps) == len(wrong_with_steps)


def test_random_needs_no_judge_even_where_sgpo_would():
    out = compute_score("sgpo/math", "1 + 1 = 3\nSo \\boxed{3}", "2", {"question": "1 + 1?"}, method="random")
    assert out["judge_status"] == "drawn" and out["judged"] == 0 and 0 <= out["score"] < 1


def test_grpo_through_verl_grades_nothing_and_equals_native():
    params = ShapingParams()
    results, order, mask, out, native, outcomes = native_and_verl("grpo", params)
    assert [r["score"] for r in results] == [float(x) for x in outcomes.view(-1)]
    assert all(r["judged"] == 0 and r["judge_status"] == "skipped" for r in results)
    torch.testing.assert_close(out.advantages, native.advantages.reshape(-1)[order][:, None] * mask)
    assert out.advantages[[order.index(i) for i in range(4)]].abs().sum() == 0  # GRPO: no signal when all wrong
    assert out.stats["sgpo/judged_responses"] == 0 and out.stats["sgpo/judge_failures"] == 0


def test_sgpo_statistics_are_grading_stats():
    params = ShapingParams()
    _, _, _, out, native, outcomes = native_and_verl("sgpo", params)
    full = grading_stats(outcomes, native)
    assert {k: out.stats[k] for k in full if k != "sgpo/rts_mean"} == {
        k: pytest.approx(v, abs=1e-6) for k, v in full.items() if k != "sgpo/rts_mean"}
    assert set(out.stats) - set(full) == {"sgpo/verl_extra_judged", "sgpo/verl_dropped_grades"}


def test_a_method_whose_rewards_leave_the_unit_interval_fails_on_the_first_call():
    """verl reads a score of 1 as correct and a negative one as unknown: such a method is refused when the
    reward function is built, before any response is scored."""
    def too_high(outcomes, rts, verdict_ok, params=ShapingParams(), **_):
        return half_rts(outcomes, rts + 2.0, verdict_ok, params)

    METHODS.register("too_high", judges=True, reward_only=True)(too_high)
    try:
        problems, _ = scenario()
        p = problems[0]
        with pytest.raises(ValueError, match="method 'too_high' gave a wrong response the reward 1"):
            compute_score("sgpo/arith", p.reference, p.answer, {"question": p.question}, method="too_high",
                          judge={"kind": "rule"})
    finally:
        METHODS.unregister("too_high")

"""sgpo.core: group kinds, RTS, reward mappings, SGPO shaping, registries.

Expected values are worked out by hand in the test (the arithmetic is written out), never
copied from the implementation's output.
"""

from __future__ import annotations

import pytest
import torch
from testkit import close, sigmoid

from sgpo.core import (
    MAX_GRADED_REWARD,
    METHODS,
    REWARD_MAPPINGS,
    ShapingParams,
    classify_groups,
    graded_reward,
    judge_mask,
    needs_judge,
    rts_from_steps,
    rts_from_tokens,
)
from sgpo.core.registry import Registry


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


# --------------------------------------------------------------------------- groups


def test_classify_groups_by_hand():
    outcomes = t([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    kinds = classify_groups(outcomes)
    assert kinds.all_negative.tolist() == [True, False, False, False, False]
    assert kinds.all_positive.tolist() == [False, True, False, False, False]
    assert kinds.mixed.tolist() == [False, False, True, True, True]


def test_classify_groups_any_dtype_and_group_size_one():
    kinds = classify_groups(torch.tensor([[0], [1]], dtype=torch.long))
    assert kinds.all_negative.tolist() == [True, False]
    assert kinds.all_positive.tolist() == [False, True]
    assert kinds.mixed.tolist() == [False, False]
    kinds = classify_groups(torch.tensor([[True, False], [False, False]]))
    assert kinds.mixed.tolist() == [True, False] and kinds.all_negative.tolist() == [False, True]


def test_classify_groups_is_a_partition():
    g = torch.Generator().manual_seed(0)
    outcomes = (torch.rand(200, 4, generator=g) < 0.3).float()
    kinds = classify_groups(outcomes)
    total = kinds.all_negative.int() + kinds.all_positive.int() + kinds.mixed.int()
    assert torch.all(total == 1)
    assert torch.equal(kinds.all_negative, outcomes.sum(1) == 0)
    assert torch.equal(kinds.all_positive, outcomes.sum(1) == 4)


def test_classify_groups_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\[N, G\]"):
        classify_groups(t([0, 1, 0]))


# --------------------------------------------------------------------------- RTS


def test_rts_from_steps_by_hand():
    first_error = torch.tensor([0, 1, 3, -1, -1, 7, -1])
    n_steps = torch.tensor([4, 4, 4, 4, 1, 5, 0])
    expected = [
        0 / 4,  # wrong at the first step
        1 / 4,
        3 / 4,
        (4 - 1) / 4,  # no error found in a wrong response: wrong at its last step
        (1 - 1) / 1,
        (5 - 1) / 5,  # an index past the last step is the last step
        0.0,  # no steps at all
    ]
    rts = rts_from_steps(first_error, n_steps)
    assert rts.dtype == torch.float32
    assert rts.tolist() == pytest.approx(expected)
    assert torch.all(rts < 1) and torch.all(rts >= 0)


def test_rts_from_steps_keeps_shape():
    rts = rts_from_steps(torch.tensor([[0, 2], [-1, 1]]), torch.tensor([[3, 3], [2, 4]]))
    assert rts.shape == (2, 2)
    close(rts, [[0 / 3, 2 / 3], [1 / 2, 1 / 4]])


def test_rts_from_tokens_by_hand():
    step_tokens = torch.tensor([[3, 5, 2, 0], [3, 5, 2, 0], [4, 0, 0, 0], [1, 1, 1, 1], [3, 4, 5, 0]])
    first_error = torch.tensor([1, -1, -1, 2, 9])
    expected = [
        3 / (3 + 5 + 2),  # tokens of step 0 before the error at step 1
        (3 + 5) / (3 + 5 + 2),  # -1: error placed at the last step
        0 / 4,  # one step, -1
        (1 + 1) / 4,
        (3 + 4) / (3 + 4 + 5),  # index past the last step: the last step (RTS stays < 1)
    ]
    rts = rts_from_tokens(first_error, step_tokens)
    assert rts.tolist() == pytest.approx(expected)
    assert torch.all(rts < 1)


def test_rts_from_tokens_equals_step_rts_when_steps_have_equal_length():
    first_error = torch.tensor([0, 1, 2, -1])
    step_tokens = torch.full((4, 3), 7)
    assert torch.allclose(rts_from_tokens(first_error, step_tokens), rts_from_steps(first_error, torch.full((4,), 3)))


# --------------------------------------------------------------------------- reward mappings


def test_logistic_by_hand():
    rts = t([0.0, 0.25, 0.5, 0.75, 0.99])
    expected = [sigmoid(5 * (x - 0.5)) for x in (0.0, 0.25, 0.5, 0.75, 0.99)]  # defaults beta 5, gamma 0.5
    assert graded_reward(rts).tolist() == pytest.approx(expected, rel=1e-6)
    assert graded_reward(rts, "logistic").tolist() == pytest.approx(expected, rel=1e-6)
    expected = [sigmoid(2 * (x - 0.3)) for x in (0.0, 0.25, 0.5, 0.75, 0.99)]
    assert graded_reward(rts, "logistic", beta=2.0, gamma=0.3).tolist() == pytest.approx(expected, rel=1e-6)


def test_linear_and_raw_by_hand():
    rts = t([0.0, 0.2, 0.5, 0.9])
    assert graded_reward(rts, "linear").tolist() == pytest.approx([0.5 * 0.0, 0.5 * 0.2, 0.5 * 0.5, 0.5 * 0.9])
    assert graded_reward(rts, "linear", scale=0.8).tolist() == pytest.approx([0.0, 0.8 * 0.2, 0.8 * 0.5, 0.8 * 0.9])
    assert graded_reward(rts, "raw").tolist() == pytest.approx([x * (1 - 1e-3) for x in (0.0, 0.2, 0.5, 0.9)])


@pytest.mark.parametrize(
    "mapping, params",
    [("logistic", {}), ("logistic", {"beta": 1000.0}), ("logistic", {"beta": 50.0, "gamma": 0.0}),
     ("linear", {}), ("linear", {"scale": 1.0}), ("linear", {"scale": 3.0}), ("raw", {})],
)
def test_graded_reward_always_below_one_and_increasing(mapping, params):
    rts = torch.linspace(0, 1 - 1e-7, 1001)
    r = graded_reward(rts, mapping, **params)
    assert torch.all(r < 1.0), r.max()
    assert torch.all(r <= MAX_GRADED_REWARD)
    assert torch.all(r[1:] >= r[:-1])  # non-decreasing in RTS


def test_unknown_mapping_lists_choices():
    with pytest.raises(KeyError, match="unknown reward mapping 'sqrt'.*linear, logistic, raw"):
        graded_reward(t([0.5]), "sqrt")
    assert REWARD_MAPPINGS.names() == ["linear", "logistic", "raw"]


# --------------------------------------------------------------------------- SGPO shaping

OUTCOMES = t([[0, 0, 0], [1, 0, 0], [1, 1, 1]])
RTS = t([[0.25, 0.5, 0.75], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
ALL_OK = torch.ones(3, 3, dtype=torch.bool)


def test_judge_mask_scopes():
    assert judge_mask(OUTCOMES).tolist() == [[True] * 3, [False] * 3, [False] * 3]  # default all_negative
    assert judge_mask(OUTCOMES, "all_incorrect").tolist() == [[True] * 3, [False, True, True], [False] * 3]
    with pytest.raises(ValueError, match="unknown scope 'wrong'; choose one of: all_incorrect, all_negative"):
        judge_mask(OUTCOMES, "wrong")


def sgpo_rewards(outcomes, rts, ok, scope="all_negative", mapping="logistic", **mapping_params):
    """The ``sgpo`` method's rewards: ``shape_graded`` of f(RTS)."""
    return METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=ok, params=ShapingParams(scope, mapping, mapping_params)).rewards


def test_sgpo_rewards_default_scope_all_negative():
    r = sgpo_rewards(OUTCOMES, RTS, ALL_OK, mapping="linear")
    close(r, [
        [0.5 * 0.25, 0.5 * 0.5, 0.5 * 0.75],  # all-negative group graded
        [1.0, 0.0, 0.0],  # mixed group keeps 0/1
        [1.0, 1.0, 1.0],  # correct answers keep 1
    ])


def test_sgpo_rewards_scope_all_incorrect():
    r = sgpo_rewards(OUTCOMES, RTS, ALL_OK, scope="all_incorrect", mapping="logistic", beta=4.0, gamma=0.5)
    close(r, [
        [sigmoid(4 * (0.25 - 0.5)), sigmoid(4 * (0.5 - 0.5)), sigmoid(4 * (0.75 - 0.5))],
        [1.0, sigmoid(0.0), sigmoid(0.0)],  # wrong answers of the mixed group graded too
        [1.0, 1.0, 1.0],
    ])


def test_sgpo_rewards_failed_verdict_keeps_outcome():
    ok = ALL_OK.clone()
    ok[0, 1] = False  # judge failed on this response
    ok[1, 0] = False  # failed verdict on a correct response: still 1
    r = sgpo_rewards(OUTCOMES, RTS, ok, scope="all_incorrect", mapping="raw")
    close(r, [
        [0.25 * (1 - 1e-3), 0.0, 0.75 * (1 - 1e-3)],
        [1.0, 0.5 * (1 - 1e-3), 0.5 * (1 - 1e-3)],
        [1.0, 1.0, 1.0],
    ])


def test_sgpo_rewards_ignore_rts_outside_scope():
    rts = RTS.clone()
    rts[1:] = float("nan")  # garbage where nothing is graded must not leak
    r = sgpo_rewards(OUTCOMES, rts, ALL_OK)
    assert not torch.isnan(r).any()
    assert r[1:].tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]


def test_wrong_answers_always_below_correct_ones():
    g = torch.Generator().manual_seed(1)
    outcomes = (torch.rand(64, 5, generator=g) < 0.2).float()
    rts = torch.rand(64, 5, generator=g) * (1 - 1e-7)
    for scope in ("all_negative", "all_incorrect"):
        for mapping, params in [("logistic", {"beta": 1e4}), ("linear", {"scale": 5.0}), ("raw", {})]:
            r = sgpo_rewards(outcomes, rts, torch.ones_like(outcomes, dtype=torch.bool), scope, mapping, **params)
            assert torch.all(r[outcomes == 0] < 1.0)
            assert torch.all(r[outcomes == 1] == 1.0)


def test_failure_rule_through_sgpo_method():
    outcomes = t([[0, 0, 0]])
    first_error = torch.tensor([[0, 2, 1]])
    n_steps = torch.tensor([[4, 4, 4]])
    ok = torch.tensor([[True, True, False]])  # the third verdict failed (timeout, unparseable ...)
    rts = rts_from_steps(first_error, n_steps)
    out = METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=ok, params=ShapingParams())
    close(out.rewards, [[sigmoid(5 * (0 / 4 - 0.5)), sigmoid(5 * (2 / 4 - 0.5)), 0.0]])
    # All verdicts failed: SGPO is GRPO for that group, zero advantage.
    out = METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=torch.zeros_like(ok), params=ShapingParams())
    assert out.rewards.tolist() == [[0.0, 0.0, 0.0]]
    assert out.advantages.tolist() == [[0.0, 0.0, 0.0]]


# --------------------------------------------------------------------------- registries


def test_method_registry_lookup_and_errors():
    assert METHODS.names() == ["dapo", "grpo", "ngrpo", "random", "sgpo"]
    assert "sgpo" in METHODS and "ppo" not in METHODS
    with pytest.raises(KeyError, match="unknown method 'sgp'; choose one of: dapo, grpo, ngrpo, random, sgpo"):
        METHODS.get("sgp")


def test_needs_judge():
    assert needs_judge("sgpo")
    assert not any(needs_judge(m) for m in ("grpo", "dapo", "ngrpo", "random"))
    with pytest.raises(KeyError, match="choose one of"):
        needs_judge("spgo")


def test_registry_refuses_duplicates():
    reg: Registry = Registry("thing")

    @reg.register("a")
    def a():
        return 1

    assert reg.get("a") is a
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        reg.register("a")(lambda: 2)
    with pytest.raises(KeyError, match="unknown thing 'b'; choose one of: a"):
        reg.get("b")


def test_a_method_says_what_it_needs_and_does():
    flags = {name: (m.judges, m.grades, m.oversamples, m.own_advantages) for name, m in ((n, METHODS.get(n)) for n in METHODS)}
    assert flags == {"dapo": (False, False, True, False), "grpo": (False, False, False, False),
                     "ngrpo": (False, False, False, True), "random": (False, True, False, False),
                     "sgpo": (True, True, False, False)}
    # only changing rewards, response by response, is declared at registration; verl runs exactly these
    assert {name: METHODS.get(name).reward_only for name in METHODS} == {
        "dapo": False, "grpo": True, "ngrpo": False, "random": True, "sgpo": True}
    with pytest.raises(ValueError, match="'bad': reward_only excludes oversamples and own_advantages"):
        METHODS.register("bad", oversamples=True, reward_only=True)(METHODS.get("dapo").fn)
    assert "bad" not in METHODS


def test_registering_and_unregistering_a_method():
    @METHODS.register("tmp_judged", judges=True)
    def tmp(outcomes, **_):
        return METHODS.get("grpo")(outcomes)

    try:
        assert "tmp_judged" in METHODS and METHODS.get("tmp_judged").grades and needs_judge("tmp_judged")
        assert METHODS.get("tmp_judged").fn is tmp
    finally:
        METHODS.unregister("tmp_judged")
    assert "tmp_judged" not in METHODS and len(METHODS) == 5
    with pytest.raises(KeyError, match="unknown method 'tmp_judged'"):
        METHODS.unregister("tmp_judged")


def test_shaping_params_are_built_from_options_in_one_place():
    options = {"scope": "all_incorrect", "mapping": "linear", "beta": 2.0, "gamma": 0.1, "linear_scale": 0.25, "scale": "none"}
    assert ShapingParams.from_options(options) == ShapingParams("all_incorrect", "linear", {"scale": 0.25}, "none")
    assert ShapingParams.from_options({"beta": 3.0}).mapping_params == {"beta": 3.0}  # logistic, gamma at its default
    assert ShapingParams.from_options({"mapping": "raw", "beta": 3.0}).mapping_params == {}
    with pytest.raises(ValueError, match="sgpo_scope='mixed'; choose one of: all_incorrect, all_negative"):
        ShapingParams.from_options({"scope": "mixed"}, prefix="sgpo_")
    with pytest.raises(ValueError, match="unknown reward mapping 'sqrt'"):
        ShapingParams(mapping="sqrt")
    with pytest.raises(ValueError, match="unknown advantage scale 'std'"):
        ShapingParams(scale="std")


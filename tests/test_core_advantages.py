"""sgpo.core advantages and the methods (grpo, sgpo, dapo, ngrpo, random), against the textbook formulas."""

from __future__ import annotations

import math
import random
import statistics

import pytest
import torch
from testkit import close, sigmoid

from sgpo.core import METHODS, SCALES, ShapingParams, group_advantages, shape_graded

EPS = 1e-6


def textbook(rewards: list[list[float]], scale: str = "group", eps: float = EPS, virtual: float | None = None):
    """A_i = (r_i - mean r) / (std r + eps), in plain Python with the unbiased std (0 for one sample)."""
    flat = [r for row in rewards for r in row]
    batch_sd = statistics.stdev(flat) if len(flat) > 1 else 0.0
    out = []
    for row in rewards:
        stats = row + ([virtual] if virtual is not None else [])
        mean = statistics.mean(stats)  # exact (fractions), so equal rewards give exactly 0
        sd = statistics.stdev(stats) if len(stats) > 1 else 0.0
        denom = {"group": sd + eps, "batch": batch_sd + eps, "none": 1.0}[scale]
        out.append([(r - mean) / denom for r in row])
    return out


def adv(rewards, **kw):
    return group_advantages(torch.tensor(rewards, dtype=torch.float32), **kw)


# --------------------------------------------------------------------------- by hand


def test_group_scale_by_hand():
    sd = statistics.stdev([1.0, 0.0, 0.0])  # sqrt(((2/3)^2 + 2 * (1/3)^2) / 2) = sqrt(1/3)
    assert sd == pytest.approx(math.sqrt(1 / 3))
    expected = [(1 - 1 / 3) / (sd + EPS), (0 - 1 / 3) / (sd + EPS), (0 - 1 / 3) / (sd + EPS)]
    assert adv([[1.0, 0.0, 0.0]]).tolist()[0] == pytest.approx(expected, rel=1e-5)


def test_group_of_two_by_hand():
    sd = math.sqrt(((1 - 0.5) ** 2 + (0 - 0.5) ** 2) / (2 - 1))  # = sqrt(0.5)
    assert adv([[1.0, 0.0]]).tolist()[0] == pytest.approx([0.5 / (sd + EPS), -0.5 / (sd + EPS)], rel=1e-5)
    # graded rewards in a group of two
    sd = math.sqrt(2 * 0.15**2)
    assert adv([[0.2, 0.5]]).tolist()[0] == pytest.approx([-0.15 / (sd + EPS), 0.15 / (sd + EPS)], rel=1e-5)


def test_scale_none_and_batch_by_hand():
    rewards = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    close(adv(rewards, scale="none"), [[1 - 1 / 3, -1 / 3, -1 / 3], [1 - 2 / 3, 1 - 2 / 3, -2 / 3]])
    batch_sd = statistics.stdev([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])  # mean 1/2: sqrt(6 * 0.25 / 5)
    assert batch_sd == pytest.approx(math.sqrt(6 * 0.25 / 5))
    expected = [[(1 - 1 / 3) / (batch_sd + EPS), -1 / 3 / (batch_sd + EPS), -1 / 3 / (batch_sd + EPS)],
                [(1 - 2 / 3) / (batch_sd + EPS), (1 - 2 / 3) / (batch_sd + EPS), -2 / 3 / (batch_sd + EPS)]]
    close(adv(rewards, scale="batch"), expected)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("row", [[0.0, 0.0, 0.0], [1.0, 1.0], [0.1] * 7, [0.3] * 16, [1 / 3] * 5, [0.7310586]])
def test_equal_rewards_give_exactly_zero(scale, row):
    a = adv([row, [1.0] * len(row)], scale=scale)
    assert not torch.isnan(a).any()
    assert torch.all(a == 0.0)  # exactly, not approximately


@pytest.mark.parametrize("scale", SCALES)
def test_groups_of_size_one(scale):
    a = adv([[0.0], [1.0], [0.4]], scale=scale)
    assert torch.all(a == 0.0) and not torch.isnan(a).any()
    assert a.shape == (3, 1)


def test_virtual_reward_by_hand():
    # All-negative group with one virtual reward-1 sample: stats [0, 0, 0, 1], mean 1/4.
    sd = math.sqrt((3 * 0.25**2 + 0.75**2) / 3)  # = 0.5
    assert sd == pytest.approx(0.5)
    assert adv([[0.0, 0.0, 0.0]], virtual_reward=1.0).tolist()[0] == pytest.approx([-0.25 / (sd + EPS)] * 3, rel=1e-5)
    # Mixed group [1, 0] + virtual 1: stats [1, 0, 1], mean 2/3, sd sqrt(1/3).
    sd = math.sqrt(((1 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2)
    assert adv([[1.0, 0.0]], virtual_reward=1.0).tolist()[0] == pytest.approx(
        [(1 - 2 / 3) / (sd + EPS), (0 - 2 / 3) / (sd + EPS)], rel=1e-5
    )
    # All-positive group: the virtual sample changes nothing.
    assert adv([[1.0, 1.0]], virtual_reward=1.0).tolist()[0] == [0.0, 0.0]
    # Group of one wrong response: stats [0, 1], mean 1/2, sd sqrt(1/2).
    assert adv([[0.0]], virtual_reward=1.0).tolist()[0] == pytest.approx([-0.5 / (math.sqrt(0.5) + EPS)], rel=1e-5)


def test_unknown_scale_lists_choices():
    with pytest.raises(ValueError, match="unknown advantage scale 'global'.*group, batch, none"):
        adv([[1.0, 0.0]], scale="global")


# --------------------------------------------------------------------------- random batches


def random_batches():
    rng = random.Random(0)
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    for n, g in [(1, 1), (5, 1), (1, 2), (7, 2), (4, 3), (16, 8), (3, 16)]:
        for _ in range(5):
            rows = []
            for _ in range(n):
                kind = rng.random()
                if kind < 0.2:
                    rows.append([rng.choice(levels)] * g)  # all-equal group
                elif kind < 0.6:
                    rows.append([float(rng.random() < 0.4) for _ in range(g)])  # binary outcomes
                else:
                    rows.append([rng.choice(levels) for _ in range(g)])  # graded rewards
            yield rows


@pytest.mark.parametrize("scale", SCALES)
def test_group_advantages_match_textbook_on_random_batches(scale):
    for rows in random_batches():
        a = adv(rows, scale=scale)
        assert not torch.isnan(a).any()
        assert a.tolist() == [pytest.approx(r, rel=1e-4, abs=1e-5) for r in textbook(rows, scale)]


def test_virtual_reward_matches_textbook_on_random_batches():
    for rows in random_batches():
        a = adv(rows, virtual_reward=1.0)
        assert a.tolist() == [pytest.approx(r, rel=1e-4, abs=1e-5) for r in textbook(rows, virtual=1.0)]


@pytest.mark.parametrize("scale", SCALES)
def test_grpo_method_matches_textbook(scale):
    for rows in random_batches():
        outcomes = torch.tensor([[float(r >= 0.5) for r in row] for row in rows])
        out = METHODS.get("grpo")(outcomes, params=ShapingParams(scale=scale))
        assert out.rewards.tolist() == outcomes.tolist()
        assert out.advantages.tolist() == [pytest.approx(r, rel=1e-4, abs=1e-5) for r in textbook(outcomes.tolist(), scale)]
        assert out.keep.dtype == torch.bool and torch.all(out.keep)


# --------------------------------------------------------------------------- methods on all-negative groups

OUTCOMES = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])


def test_grpo_all_negative_group_gets_zero():
    out = METHODS.get("grpo")(OUTCOMES)
    assert out.advantages[0].tolist() == [0.0, 0.0, 0.0]
    assert out.advantages[2].tolist() == [0.0, 0.0, 0.0]
    assert out.advantages[1, 0] > 0 > out.advantages[1, 1]


def test_sgpo_method_by_hand():
    # Judge: first errors 0, 2, -1 of 4 steps each -> RTS 0/4, 2/4, 3/4 in the all-negative group.
    rts = torch.tensor([[0 / 4, 2 / 4, 3 / 4], [0.1, 0.2, 0.3], [0.0, 0.0, 0.0]])
    ok = torch.ones(3, 3, dtype=torch.bool)
    out = METHODS.get("sgpo")(OUTCOMES, rts=rts, verdict_ok=ok)
    r0 = [sigmoid(5 * (0.0 - 0.5)), sigmoid(5 * (0.5 - 0.5)), sigmoid(5 * (0.75 - 0.5))]
    assert out.rewards.tolist() == [pytest.approx(r0), [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    assert out.advantages.tolist() == [pytest.approx(r, rel=1e-4, abs=1e-6) for r in textbook([r0, [1.0, 0, 0], [1.0] * 3])]
    # The all-negative group is recovered: later first error, larger advantage.
    a = out.advantages[0]
    assert a[0] < a[1] < a[2]
    assert torch.all(out.keep)


def test_sgpo_method_shaping_params():
    rts = torch.tensor([[0.2, 0.4, 0.6], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    params = ShapingParams(scope="all_incorrect", mapping="linear", mapping_params={"scale": 0.4}, scale="none")
    out = METHODS.get("sgpo")(OUTCOMES, rts=rts, verdict_ok=torch.ones(3, 3, dtype=torch.bool), params=params)
    r = [[0.4 * 0.2, 0.4 * 0.4, 0.4 * 0.6], [1.0, 0.4 * 0.5, 0.4 * 0.5], [1.0, 1.0, 1.0]]
    assert out.rewards.tolist() == [pytest.approx(row) for row in r]
    assert out.advantages.tolist() == [pytest.approx(row, abs=1e-6) for row in textbook(r, "none")]


def test_sgpo_equal_rts_in_all_negative_group_gives_zero():
    rts = torch.full((3, 3), 0.5)
    out = METHODS.get("sgpo")(OUTCOMES, rts=rts, verdict_ok=torch.ones(3, 3, dtype=torch.bool))
    assert torch.all(out.advantages[0] == 0.0)


def test_dapo_drops_zero_variance_groups():
    outcomes = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    out = METHODS.get("dapo")(outcomes)
    assert out.keep.tolist() == [False, False, True, True]
    assert out.rewards.tolist() == outcomes.tolist()
    sd = math.sqrt(0.5)
    assert out.advantages.tolist() == [[0.0, 0.0], [0.0, 0.0], pytest.approx([0.5 / (sd + EPS), -0.5 / (sd + EPS)], rel=1e-5),
                                       pytest.approx([-0.5 / (sd + EPS), 0.5 / (sd + EPS)], rel=1e-5)]


def test_ngrpo_all_negative_group_gets_negative_advantage():
    out = METHODS.get("ngrpo")(OUTCOMES)
    sd0 = statistics.stdev([0, 0, 0, 1])
    sd1 = statistics.stdev([1, 0, 0, 1])  # mean 1/2
    assert out.advantages.tolist() == [
        pytest.approx([-0.25 / (sd0 + EPS)] * 3, rel=1e-5),
        pytest.approx([0.5 / (sd1 + EPS), -0.5 / (sd1 + EPS), -0.5 / (sd1 + EPS)], rel=1e-5),
        [0.0, 0.0, 0.0],
    ]
    assert out.rewards.tolist() == OUTCOMES.tolist() and torch.all(out.keep)


def test_random_method_is_seeded_and_only_grades_scope():
    def run(seed, **kw):
        return METHODS.get("random")(OUTCOMES, generator=torch.Generator().manual_seed(seed), **kw)

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.rewards, b.rewards) and torch.equal(a.advantages, b.advantages)
    assert not torch.equal(a.rewards[0], c.rewards[0])
    # Graded with the logistic mapping of some RTS in [0, 1): between f(0) and f(1).
    assert torch.all(a.rewards[0] >= sigmoid(5 * (0 - 0.5)) - 1e-6) and torch.all(a.rewards[0] < sigmoid(5 * (1 - 0.5)))
    assert a.rewards[1:].tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]  # outside scope untouched
    assert (a.advantages[0] != 0).any()  # the all-negative group gets signal
    d = run(0, params=ShapingParams(scope="all_incorrect", mapping="linear"))
    assert torch.all(d.rewards[1, 1:] < 0.5) and d.rewards[1, 0] == 1.0


def test_random_method_rts_is_uniform():
    outcomes = torch.zeros(2000, 4)
    out = METHODS.get("random")(outcomes, params=ShapingParams(mapping="raw"), generator=torch.Generator().manual_seed(3))
    rts = out.rewards / (1 - 1e-3)
    assert 0 <= rts.min() and rts.max() < 1
    assert abs(rts.mean().item() - 0.5) < 0.02  # U[0,1): mean 1/2, sd of the mean sqrt(1/12/8000) ~ 0.003
    assert abs((rts < 0.25).float().mean().item() - 0.25) < 0.02


# ------------------------------------------------------------- unknown rewards (the failure rule of docs/metrics.md)


@pytest.mark.parametrize("scale", ["group", "none"])
def test_unknown_rewards_leave_the_statistics_and_get_zero(scale):
    g = torch.Generator().manual_seed(3)
    rewards = torch.rand(40, 5, generator=g)
    known = torch.rand(40, 5, generator=g) > 0.3
    out = group_advantages(rewards, scale, known=known)
    for row in range(40):
        k = known[row]
        assert (out[row][~k] == 0).all()
        if k.sum() >= 2:  # the known rewards alone, as a group of their own
            expected = group_advantages(rewards[row][k][None], scale)[0]
            assert torch.allclose(out[row][k], expected, atol=1e-6)
        else:
            assert (out[row] == 0).all()  # fewer than two known rewards: no signal


def test_unknown_rewards_with_a_virtual_sample_and_batch_scale():
    rewards = torch.tensor([[0.0, 0.0, 0.3], [0.2, 0.4, 0.9]])
    known = torch.tensor([[True, True, False], [True, True, True]])
    ng = group_advantages(rewards, "group", virtual_reward=1.0, known=known)
    # group 0 is [0, 0] plus the virtual 1: mean 1/3, std sqrt(1/3)
    assert ng[0].tolist() == pytest.approx([-(1 / 3) / (1 / 3) ** 0.5] * 2 + [0.0], abs=1e-5)
    batch = group_advantages(rewards, "batch", known=known)
    std = torch.tensor([0.0, 0.0, 0.2, 0.4, 0.9]).std().item()
    assert batch[1].tolist() == pytest.approx([(x - 0.5) / std for x in (0.2, 0.4, 0.9)], abs=1e-5)
    assert batch[0].tolist() == [0.0, 0.0, 0.0]


def test_a_failed_verdict_no_longer_ranks_below_wrong_at_step_zero():
    outcomes = torch.zeros(1, 3)
    rts = torch.tensor([[0.0, 0.75, 0.0]])
    ok = torch.tensor([[True, True, False]])  # the third judge call timed out
    out = METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=ok, params=ShapingParams())
    assert out.advantages[0, 2] == 0.0
    assert out.advantages[0, 0] < 0 < out.advantages[0, 1]
    alone = METHODS.get("sgpo")(outcomes[:, :2], rts=rts[:, :2], verdict_ok=ok[:, :2], params=ShapingParams())
    assert torch.allclose(out.advantages[:, :2], alone.advantages)


# ------------------------------------------------------------- shape_graded: what reward-only methods share


def test_shape_graded_by_hand():
    outcomes = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    graded = torch.tensor([[0.2, 0.6, 0.9], [0.7, 0.4, 0.3]])
    usable = torch.tensor([[True, True, False], [True, True, False]])
    out = shape_graded(outcomes, graded, usable, ShapingParams())
    # all-negative group: the two usable grades, the third unknown (reward kept at its outcome 0);
    # mixed group: out of scope, so 0/1 whatever the grades, and every reward known
    assert out.rewards.tolist() == [pytest.approx([0.2, 0.6, 0.0]), [1.0, 0.0, 0.0]]
    assert out.known.tolist() == [[True, True, False], [True, True, True]]
    d = 0.2 / statistics.stdev([0.2, 0.6])  # two known rewards: +-(0.6 - 0.2) / 2 over their std
    assert out.advantages[0].tolist() == pytest.approx([-d, d, 0.0], rel=1e-4)
    assert out.advantages[1].tolist() == pytest.approx(textbook([[1.0, 0.0, 0.0]])[0], rel=1e-5)
    wide = shape_graded(outcomes, graded, usable, ShapingParams(scope="all_incorrect", scale="none"))
    assert wide.rewards[1].tolist() == pytest.approx([1.0, 0.4, 0.0]) and wide.known[1].tolist() == [True, True, False]
    assert wide.advantages[1].tolist() == pytest.approx([0.3, -0.3, 0.0], abs=1e-6)


def test_reward_only_methods_are_shape_graded_of_their_graded_rewards():
    """sgpo and random are shape_graded of f(RTS) (random: of its own draw), grpo of the outcomes."""
    g = torch.Generator().manual_seed(5)
    outcomes = (torch.rand(30, 4, generator=g) < 0.3).float()
    rts, ok = torch.rand(30, 4, generator=g), torch.rand(30, 4, generator=g) < 0.8
    params = ShapingParams(scope="all_incorrect", mapping="linear", mapping_params={"scale": 0.5}, scale="none")
    sgpo = METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=ok, params=params)
    want = shape_graded(outcomes, 0.5 * rts, ok, params)
    assert torch.equal(sgpo.rewards, want.rewards) and torch.equal(sgpo.advantages, want.advantages)
    assert torch.equal(sgpo.known, want.known) and not want.known.all()
    drawn = torch.rand(30, 4, generator=torch.Generator().manual_seed(9))
    rnd = METHODS.get("random")(outcomes, verdict_ok=ok, params=params, generator=torch.Generator().manual_seed(9))
    assert torch.equal(rnd.advantages, shape_graded(outcomes, 0.5 * drawn, ok, params).advantages)
    grpo = METHODS.get("grpo")(outcomes, params=params)
    assert torch.equal(grpo.advantages, group_advantages(outcomes, "none")) and grpo.known is None

"""sgpo.core.loss: clipped surrogate, k3 KL and the three aggregations, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from testkit import close

from sgpo.core import AGGREGATIONS, aggregate, k3_kl, policy_loss


def logs(ratios):
    """old_logp = 0, logp = log(ratio): the token ratios are exactly ``ratios``."""
    logp = torch.tensor(ratios, dtype=torch.float64).log()
    return logp, torch.zeros_like(logp)


def test_clipped_surrogate_by_hand():
    logp, old = logs([[1.5, 0.5], [1.5, 0.5]])
    advantages = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.ones(2, 2)
    out = policy_loss(logp, old, advantages, mask, eps_low=0.2, eps_high=0.2)
    # -min(ratio * A, clip(ratio, 0.8, 1.2) * A) per token:
    token_losses = [
        -min(1.5 * 1, 1.2 * 1), -min(0.5 * 1, 0.8 * 1),  # = -1.2 (clipped), -0.5
        -min(1.5 * -1, 1.2 * -1), -min(0.5 * -1, 0.8 * -1),  # = 1.5, 0.8 (clipped)
    ]
    assert out.loss.item() == pytest.approx(sum(token_losses) / 4)
    assert out.pg_loss.item() == pytest.approx(sum(token_losses) / 4)
    assert out.clip_frac.item() == pytest.approx(2 / 4)
    assert out.kl.item() == 0.0


def test_asymmetric_clip_range():
    logp, old = logs([[1.5, 1.1], [0.5, 0.7]])
    advantages = torch.tensor([2.0, -1.0], dtype=torch.float64)
    out = policy_loss(logp, old, advantages, torch.ones(2, 2), eps_low=0.2, eps_high=0.28)
    token_losses = [
        -min(1.5 * 2, 1.28 * 2), -min(1.1 * 2, 1.1 * 2),  # upper clip at 1 + eps_high
        -min(0.5 * -1, 0.8 * -1), -min(0.7 * -1, 0.8 * -1),  # lower clip at 1 - eps_low
    ]
    assert out.loss.item() == pytest.approx(sum(token_losses) / 4)
    assert out.clip_frac.item() == pytest.approx(3 / 4)


def test_gradient_flows_only_through_unclipped_tokens():
    logp, old = logs([[1.5, 0.5, 1.0]])
    logp.requires_grad_(True)
    out = policy_loss(logp, old, torch.tensor([1.0], dtype=torch.float64), torch.ones(1, 3))
    out.loss.backward()
    # d/dlogp of -ratio * A / n_tokens is -ratio * A / 3; the clipped token has no gradient.
    close(logp.grad, [[0.0, -0.5 / 3, -1.0 / 3]])


def test_padding_is_ignored():
    logp, old = logs([[1.0, 1.0, 1.0], [1.0, 3.0, 3.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    out = policy_loss(logp, old, torch.tensor([1.0, 0.5], dtype=torch.float64), mask)
    assert out.loss.item() == pytest.approx((-1 - 1 - 1 - 0.5) / 4)
    assert out.clip_frac.item() == 0.0


def test_aggregations_by_hand():
    loss_mat = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])  # 99 sits on padding
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(loss_mat, mask).item() == pytest.approx((1 + 2 + 3 + 4) / 4)  # default token_mean
    assert aggregate(loss_mat, mask, "token_mean").item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert aggregate(loss_mat, mask, "seq_mean_token_mean").item() == pytest.approx(((1 + 2 + 3) / 3 + 4 / 1) / 2)
    assert aggregate(loss_mat, mask, "seq_mean_token_sum_norm").item() == pytest.approx(((1 + 2 + 3) / 3 + 4 / 3) / 2)
    assert aggregate(loss_mat, mask, "seq_mean_token_sum_norm", norm=10).item() == pytest.approx(((1 + 2 + 3) / 10 + 4 / 10) / 2)


def test_aggregations_through_policy_loss():
    # Sequence 0: 3 tokens of loss -1 each (A = 1, ratio 1); sequence 1: 1 token of loss -2.
    logp, old = logs([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    expected = {
        "token_mean": (-1 - 1 - 1 - 2) / 4,
        "seq_mean_token_mean": (-3 / 3 + -2 / 1) / 2,
        "seq_mean_token_sum_norm": (-3 / 3 + -2 / 3) / 2,
    }
    assert set(expected) == set(AGGREGATIONS)
    for mode, value in expected.items():
        assert policy_loss(logp, old, a, mask, aggregation=mode).loss.item() == pytest.approx(value)


def test_unknown_aggregation_lists_choices():
    with pytest.raises(ValueError, match="unknown loss aggregation 'sum'.*token_mean, seq_mean_token_mean"):
        aggregate(torch.ones(1, 1), torch.ones(1, 1), "sum")


def test_k3_kl_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.2), math.log(0.3)]], dtype=torch.float64)
    ref = torch.tensor([[math.log(0.25), math.log(0.2), math.log(0.6)]], dtype=torch.float64)
    # exp(ref - logp) - (ref - logp) - 1 with ref/pi = 0.5, 1, 2
    expected = [0.5 - math.log(0.5) - 1, 0.0, 2 - math.log(2) - 1]
    assert k3_kl(logp, ref).tolist()[0] == pytest.approx(expected)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 7, generator=g), torch.randn(50, 7, generator=g)
    assert torch.all(k3_kl(x, y) >= 0)


def test_kl_term_in_loss():
    logp = torch.tensor([[math.log(0.5), math.log(0.3)]], dtype=torch.float64)
    ref = torch.tensor([[math.log(0.25), math.log(0.6)]], dtype=torch.float64)
    kl_tokens = [0.5 - math.log(0.5) - 1, 2 - math.log(2) - 1]
    out = policy_loss(logp, logp.detach(), torch.tensor([1.0], dtype=torch.float64), torch.ones(1, 2),
                      ref_logp=ref, beta_kl=0.1)
    pg = (-1.0 - 1.0) / 2  # ratio 1, A = 1
    assert out.pg_loss.item() == pytest.approx(pg)
    assert out.kl.item() == pytest.approx(sum(kl_tokens) / 2)
    assert out.loss.item() == pytest.approx(pg + 0.1 * sum(kl_tokens) / 2)
    # beta_kl = 0: no reference needed and the KL is not added.
    out = policy_loss(logp, logp.detach(), torch.tensor([1.0], dtype=torch.float64), torch.ones(1, 2), ref_logp=ref)
    assert out.loss.item() == pytest.approx(pg) and out.kl.item() == 0.0
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, logp, torch.tensor([1.0]), torch.ones(1, 2), beta_kl=0.1)

"""The simplified K-step setting: a policy that solves a problem in K steps.

Step k (0-based) is right with probability p_k = sigmoid(theta_k), given every earlier step was
right. A response therefore has one of K + 1 *outcomes*, indexed c = 0..K:

* c < K: the **first error** is at step c, probability prod_{j<c} p_j * (1 - p_c), RTS = c / K;
* c = K: correct, probability prod_j p_j, reward 1.

For K = 2 these are "wrong at step 1" (RTS 0), "wrong at step 2" (RTS 1/2) and "correct".
Everything is float64 torch; ``theta`` is a [K] tensor of per-step logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DTYPE = torch.float64


def as_theta(theta) -> torch.Tensor:
    """Any sequence of K logits -> [K] float64 tensor."""
    return torch.as_tensor(theta, dtype=DTYPE).reshape(-1)


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log sigmoid(x), elementwise. Softplus rather than F.logsigmoid: on a busy CPU the latter
    was measured at 0.2-1 ms per call even for a 2-vector, softplus at ~2 us."""
    return -F.softplus(-x, threshold=50.0)


def outcome_log_probs(theta: torch.Tensor) -> torch.Tensor:
    """log P(outcome c), [K] -> [K + 1]; log-sigmoids keep tiny probabilities finite."""
    log_right = log_sigmoid(theta)  # log p_k
    log_wrong = log_sigmoid(-theta)  # log (1 - p_k)
    before = torch.cat([theta.new_zeros(1), torch.cumsum(log_right, 0)])  # log prod_{j<c} p_j
    return torch.cat([before[:-1] + log_wrong, before[-1:]])


def outcome_probs(theta: torch.Tensor) -> torch.Tensor:
    """P(outcome c) for c = first error at step 0..K-1, then correct. [K] -> [K + 1]."""
    return outcome_log_probs(theta).exp()


def outcome_scores(theta: torch.Tensor) -> torch.Tensor:
    """Score function of each outcome, S[c, j] = d log P(c) / d theta_j. [K] -> [K + 1, K].

    d log p_j / d theta_j = 1 - p_j for every step j before the first error, and
    d log (1 - p_c) / d theta_c = -p_c at the first error itself; later steps were never taken.
    """
    K = theta.shape[0]
    p = torch.sigmoid(theta)
    c = torch.arange(K + 1)[:, None]
    j = torch.arange(K)[None, :]
    return torch.where(j < c, 1.0 - p, torch.where(j == c, -p, torch.zeros_like(p)))


def accuracy(theta: torch.Tensor) -> torch.Tensor:
    """Expected accuracy P(correct) = prod_k p_k. [K] -> []."""
    return log_sigmoid(theta).sum().exp()


def p_all_negative(theta: torch.Tensor, group_size: int) -> torch.Tensor:
    """P(a group of G i.i.d. responses is all-negative) = (1 - P(correct))^G. [K] -> []."""
    return (1.0 - accuracy(theta)) ** group_size


def sample_outcomes(theta: torch.Tensor, n_groups: int, group_size: int, generator: torch.Generator) -> torch.Tensor:
    """Sample n_groups groups of G i.i.d. responses; returns outcome indices [n_groups, G] (long)."""
    probs = outcome_probs(theta)
    flat = torch.multinomial(probs, n_groups * group_size, replacement=True, generator=generator)
    return flat.reshape(n_groups, group_size)

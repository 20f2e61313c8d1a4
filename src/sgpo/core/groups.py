"""Group kinds: what GRPO can and cannot learn from a group of G responses."""

from __future__ import annotations

from typing import NamedTuple

import torch


class GroupKinds(NamedTuple):
    """Boolean masks, each shaped [N], that partition the N groups."""

    all_negative: torch.Tensor
    all_positive: torch.Tensor
    mixed: torch.Tensor


def is_correct(outcomes: torch.Tensor) -> torch.Tensor:
    """The one definition of a correct response, used by every path: outcome (or score) = 1.

    A graded reward is always below 1 (``MAX_GRADED_REWARD``), so this also tells a correct
    response from a graded wrong one in a score that already holds graded rewards (verl).
    [...] -> [...] bool.
    """
    return outcomes >= 1.0


def classify_groups(outcomes: torch.Tensor) -> GroupKinds:
    """Classify groups by their verifier outcomes.

    Args:
        outcomes: [N, G] outcomes in {0, 1} (any dtype); see :func:`is_correct`.

    Returns:
        GroupKinds of [N] bool masks: all-negative (max o = 0), all-positive (min o = 1), mixed.
    """
    if outcomes.dim() != 2:
        raise ValueError(f"outcomes must be [N, G], got shape {tuple(outcomes.shape)}")
    correct = is_correct(outcomes)
    all_negative = ~correct.any(dim=1)
    all_positive = correct.all(dim=1)
    return GroupKinds(all_negative, all_positive, ~(all_negative | all_positive))

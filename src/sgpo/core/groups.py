"""Group kinds: what GRPO can and cannot learn from a group of G responses."""

from __future__ import annotations

from typing import NamedTuple

import torch


class GroupKinds(NamedTuple):
    """Boolean masks, each shaped [N], that partition the N groups."""

    all_negative: torch.Tensor
    all_positive: torch.Tensor
    mixed: torch.Tensor


def classify_groups(outcomes: torch.Tensor) -> GroupKinds:
    """Classify groups by their verifier outcomes.

    Args:
        outcomes: [N, G] outcomes in {0, 1} (any dtype).

    Returns:
        GroupKinds of [N] bool masks: all-negative (max o = 0), all-positive (min o = 1), mixed.
    """
    if outcomes.dim() != 2:
        raise ValueError(f"outcomes must be [N, G], got shape {tuple(outcomes.shape)}")
    correct = outcomes > 0.5
    all_negative = ~correct.any(dim=1)
    all_positive = correct.all(dim=1)
    return GroupKinds(all_negative, all_positive, ~(all_negative | all_positive))

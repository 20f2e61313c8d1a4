"""Group-relative advantages (GRPO and its variants)."""

from __future__ import annotations

import torch

SCALES = ("group", "batch", "none")


def _std(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sample (unbiased) std, as TRL and verl use; 0 where there is a single sample."""
    if x.shape[dim] < 2:
        return torch.zeros_like(x.mean(dim=dim))
    return x.std(dim=dim)


def group_advantages(
    rewards: torch.Tensor,
    scale: str = "group",
    eps: float = 1e-6,
    virtual_reward: float | None = None,
) -> torch.Tensor:
    """A_i = (r_i - mean_g r) / (std + eps), per group.

    Args:
        rewards: [N, G] float rewards.
        scale: ``group`` divides by each group's std, ``batch`` by the std of all N*G rewards,
            ``none`` does not divide (Dr. GRPO).
        eps: added to the std.
        virtual_reward: if given, one extra sample with this reward joins each group's mean and
            std (NGRPO uses 1.0 so an all-negative group gets negative advantages). It gets no
            advantage of its own.

    Returns:
        [N, G] float advantages. A group whose statistics see only equal rewards gets exactly 0.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; choose one of: {', '.join(SCALES)}")
    stats = rewards.float()
    if virtual_reward is not None:
        stats = torch.cat([stats, stats.new_full((stats.shape[0], 1), virtual_reward)], dim=1)
    mean = stats.mean(dim=1, keepdim=True)
    centred = rewards.float() - mean
    # Equal rewards can leave a rounding residue in the mean; such a group carries no signal.
    flat = stats.amax(dim=1, keepdim=True) == stats.amin(dim=1, keepdim=True)
    centred = centred.masked_fill(flat, 0.0)
    if scale == "group":
        return centred / (_std(stats, dim=1).unsqueeze(1) + eps)
    if scale == "batch":
        return centred / (_std(rewards.float().flatten(), dim=0) + eps)
    return centred

"""Group-relative advantages (GRPO and its variants)."""

from __future__ import annotations

import torch

SCALES = ("group", "batch", "none")


def _std(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sample (unbiased) std, as TRL and verl use; 0 where there is a single sample."""
    if x.shape[dim] < 2:
        return torch.zeros_like(x.mean(dim=dim))
    return x.std(dim=dim)


def _known_advantages(rewards: torch.Tensor, known: torch.Tensor, scale: str, eps: float,
                      virtual_reward: float | None) -> torch.Tensor:
    """:func:`group_advantages` where only the ``known`` rewards form the statistics (the failure rule, docs/metrics.md)."""
    r, k = rewards.float(), known.bool()
    if virtual_reward is not None:
        r = torch.cat([r, r.new_full((r.shape[0], 1), virtual_reward)], dim=1)
        k = torch.cat([k, k.new_ones((k.shape[0], 1))], dim=1)
    kf = k.float()
    count = kf.sum(dim=1, keepdim=True)
    mean = (r * kf).sum(dim=1, keepdim=True) / count.clamp(min=1)
    dev = (r - mean) * kf  # 0 for unknown rewards
    big, small = r.masked_fill(~k, -torch.inf).amax(1, keepdim=True), r.masked_fill(~k, torch.inf).amin(1, keepdim=True)
    no_signal = (count < 2) | (big == small)  # fewer than two known rewards, or all equal
    centred = dev.masked_fill(no_signal, 0.0)[:, : rewards.shape[1]]
    if scale == "group":  # the unbiased std of the known rewards (and the virtual one), as without unknowns
        std = (dev.pow(2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)).sqrt()
        return centred / (std + eps)
    if scale == "batch":
        flat = rewards.float()[known.bool()]
        return centred / (_std(flat, dim=0) + eps)
    return centred


def group_advantages(
    rewards: torch.Tensor,
    scale: str = "group",
    eps: float = 1e-6,
    virtual_reward: float | None = None,
    known: torch.Tensor | None = None,
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
        known: [N, G] bool, the rewards that are known (default: all). An unknown reward (a
            response whose verdict failed: the failure rule) leaves its group's mean and std and gets
            advantage 0, as TRL does for rows whose reward is None.

    Returns:
        [N, G] float advantages. A group whose statistics see only equal rewards, or fewer than
        two known ones, gets exactly 0.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; choose one of: {', '.join(SCALES)}")
    if known is not None and not bool(known.all()):
        return _known_advantages(rewards, known, scale, eps, virtual_reward)
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

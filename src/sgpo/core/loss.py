"""The clipped policy-gradient loss with optional k3 KL, and its three aggregations."""

from __future__ import annotations

from typing import NamedTuple

import torch

AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


def aggregate(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str = "token_mean", norm: float | None = None) -> torch.Tensor:
    """Reduce per-token losses to a scalar.

    Args:
        loss_mat: [B, T] per-token loss.
        mask: [B, T] 1 for response tokens, 0 for padding.
        mode: ``token_mean`` (DAPO: mean over all tokens of the batch), ``seq_mean_token_mean``
            (GRPO: mean over each sequence, then over sequences), ``seq_mean_token_sum_norm``
            (Dr. GRPO: sum over each sequence divided by a constant ``norm``, then mean).
        norm: the constant of ``seq_mean_token_sum_norm``; defaults to T.

    Returns:
        [] scalar.
    """
    mask = mask.to(loss_mat.dtype)
    if mode == "token_mean":
        return (loss_mat * mask).sum() / mask.sum().clamp(min=1)
    if mode == "seq_mean_token_mean":
        per_seq = (loss_mat * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return per_seq.mean()
    if mode == "seq_mean_token_sum_norm":
        per_seq = (loss_mat * mask).sum(dim=1) / (norm if norm is not None else loss_mat.shape[1])
        return per_seq.mean()
    raise ValueError(f"unknown loss aggregation {mode!r}; choose one of: {', '.join(AGGREGATIONS)}")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1. [B, T] -> [B, T]."""
    log_ratio = (ref_logp - logp).clamp(-20.0, 20.0)
    return torch.exp(log_ratio) - log_ratio - 1.0


class PolicyLoss(NamedTuple):
    loss: torch.Tensor
    """[] scalar to minimise."""
    pg_loss: torch.Tensor
    """[] the clipped surrogate part."""
    kl: torch.Tensor
    """[] mean k3 KL over response tokens (0 without a reference)."""
    clip_frac: torch.Tensor
    """[] share of response tokens where the clipped branch was taken."""


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    aggregation: str = "token_mean",
    ref_logp: torch.Tensor | None = None,
    beta_kl: float = 0.0,
    norm: float | None = None,
    token_weights: torch.Tensor | None = None,
) -> PolicyLoss:
    """PPO-clipped surrogate on token log-ratios, plus beta_kl * k3 KL to a frozen reference.

    loss_t = -min(ratio_t * A, clip(ratio_t, 1 - eps_low, 1 + eps_high) * A) + beta_kl * kl_t

    Args:
        logp: [B, T] log-probs of the sampled tokens under the current policy.
        old_logp: [B, T] log-probs at sampling time (behaviour policy).
        advantages: [B] one advantage per sequence, broadcast over its tokens.
        mask: [B, T] response-token mask.
        eps_low, eps_high: clip range [1 - eps_low, 1 + eps_high].
        aggregation: see :func:`aggregate`.
        ref_logp: [B, T] reference log-probs, required when beta_kl > 0.
        beta_kl: KL coefficient; 0 means no reference model.
        norm: constant for ``seq_mean_token_sum_norm``.
        token_weights: [B, T] importance weights (no gradient) multiplying each token's loss, KL
            term included, as TRL applies its sampling correction; None: all 1.
    """
    adv = advantages.to(logp.dtype)[:, None]
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv
    pg_mat = -torch.minimum(unclipped, clipped)
    w = 1.0 if token_weights is None else token_weights.to(logp.dtype)
    maskf = mask.to(logp.dtype)
    n_tokens = maskf.sum().clamp(min=1)
    clip_frac = ((clipped < unclipped).to(logp.dtype) * maskf).sum() / n_tokens
    pg_loss = aggregate(pg_mat * w, mask, aggregation, norm)
    if beta_kl > 0:
        if ref_logp is None:
            raise ValueError("beta_kl > 0 needs ref_logp")
        kl_mat = k3_kl(logp, ref_logp)
        kl = (kl_mat * maskf).sum() / n_tokens
        loss = pg_loss + beta_kl * aggregate(kl_mat * w, mask, aggregation, norm)
    else:
        kl = logp.new_zeros(())
        loss = pg_loss
    return PolicyLoss(loss, pg_loss.detach(), kl.detach(), clip_frac.detach())

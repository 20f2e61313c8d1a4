"""Reasoning trajectory score (RTS): how far a wrong response got before its first error."""

from __future__ import annotations

import torch


def rts_from_steps(first_error: torch.Tensor, n_steps: torch.Tensor) -> torch.Tensor:
    """RTS = k / K, the share of steps before the first incorrect step.

    A wrong response in which the judge found no error (k = -1) is treated as wrong at its last
    step, RTS = (K - 1) / K. A response with no steps (K = 0) scores 0.

    Args:
        first_error: [...] long, 0-based index k of the first incorrect step, or -1.
        n_steps: [...] long, number of steps K of each response (same shape).

    Returns:
        [...] float32 RTS in [0, 1).
    """
    k = first_error.long()
    K = n_steps.long()
    k = torch.where(k < 0, K - 1, k)
    k = torch.minimum(k.clamp(min=0), (K - 1).clamp(min=0))
    return (k.float() / K.clamp(min=1).float()).to(torch.float32)


def rts_from_tokens(first_error: torch.Tensor, step_tokens: torch.Tensor) -> torch.Tensor:
    """Token variant: tokens before the first incorrect step / all tokens of the response.

    The same rule for k = -1 applies: the error is placed at the last step.

    Args:
        first_error: [M] long, 0-based first incorrect step, or -1.
        step_tokens: [M, S] long, tokens in each step, right-padded with 0 past the last step.

    Returns:
        [M] float32 RTS in [0, 1).
    """
    n_steps = (step_tokens > 0).sum(dim=1)
    k = first_error.long()
    # k = -1 and k past the last step both mean "wrong at the last step", as in rts_from_steps.
    k = torch.where(k < 0, n_steps - 1, k)
    k = torch.minimum(k.clamp(min=0), (n_steps - 1).clamp(min=0))
    before = torch.arange(step_tokens.shape[1], device=step_tokens.device)[None, :] < k[:, None]
    tokens_before = (step_tokens * before).sum(dim=1).float()
    total = step_tokens.sum(dim=1).clamp(min=1).float()
    return tokens_before / total

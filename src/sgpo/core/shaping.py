"""SGPO reward shaping: graded rewards for the wrong responses the judge looked at."""

from __future__ import annotations

import torch

from sgpo.core.groups import classify_groups, is_correct
from sgpo.core.registry import Registry

#: Scopes: which wrong responses are graded. Each is ``outcomes [N, G] -> [N, G] bool``.
SCOPES: Registry = Registry("scope")


@SCOPES.register("all_negative")
def all_negative(outcomes: torch.Tensor) -> torch.Tensor:
    """The wrong responses of all-negative groups; mixed groups keep 0/1. [N, G] -> [N, G] bool."""
    return ~is_correct(outcomes) & classify_groups(outcomes).all_negative[:, None]


@SCOPES.register("all_incorrect")
def all_incorrect(outcomes: torch.Tensor) -> torch.Tensor:
    """Every wrong response. [N, G] -> [N, G] bool."""
    return ~is_correct(outcomes)


def judge_mask(outcomes: torch.Tensor, scope: str = "all_negative") -> torch.Tensor:
    """Which responses SGPO sends to the judge.

    Args:
        outcomes: [N, G] outcomes in {0, 1}.
        scope: a name in ``SCOPES``: ``all_negative`` (wrong responses of all-negative groups)
            or ``all_incorrect`` (every wrong response).

    Returns:
        [N, G] bool mask.
    """
    return SCOPES.get(scope)(outcomes)


def restrict_to_scope(outcomes: torch.Tensor, graded: torch.Tensor, scope: str = "all_negative") -> torch.Tensor:
    """r_i = graded_i for responses in ``scope``, else r_i = o_i.

    verl grades every wrong response while scoring it one at a time, before the groups are
    known; this puts the outcome back where SGPO's scope says the response is not graded.

    Args:
        outcomes: [N, G] outcomes in {0, 1}.
        graded: [N, G] graded rewards (read only where in scope).
        scope: see :func:`judge_mask`.

    Returns:
        [N, G] float rewards.
    """
    return torch.where(judge_mask(outcomes, scope), graded.float(), outcomes.float())

"""Graded rewards: map an RTS in [0, 1) to a reward strictly below the reward 1 of a correct answer."""

from __future__ import annotations

import torch

from sgpo.core.registry import Registry

#: The largest reward a wrong response can get; keeps float rounding from ever reaching 1.
MAX_GRADED_REWARD = 1.0 - 1e-6

REWARD_MAPPINGS: Registry = Registry("reward mapping")


@REWARD_MAPPINGS.register("logistic")
def logistic(rts: torch.Tensor, beta: float = 5.0, gamma: float = 0.5) -> torch.Tensor:
    """f(RTS) = sigmoid(beta * (RTS - gamma)). Shapes: [...] -> [...]."""
    return torch.sigmoid(beta * (rts - gamma))


@REWARD_MAPPINGS.register("linear")
def linear(rts: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """f(RTS) = scale * RTS. Shapes: [...] -> [...]."""
    return scale * rts


@REWARD_MAPPINGS.register("raw")
def raw(rts: torch.Tensor) -> torch.Tensor:
    """f(RTS) = RTS * (1 - 1e-3). Shapes: [...] -> [...]."""
    return rts * (1.0 - 1e-3)


def graded_reward(rts: torch.Tensor, mapping: str = "logistic", **params: float) -> torch.Tensor:
    """Apply the named mapping and clamp below 1 so a wrong answer never ties a correct one.

    Args:
        rts: [...] float RTS values in [0, 1).
        mapping: a name in ``REWARD_MAPPINGS`` (``logistic``, ``linear``, ``raw``).
        params: the mapping's parameters (``beta``, ``gamma`` / ``scale``).

    Returns:
        [...] float rewards in (-inf, MAX_GRADED_REWARD].
    """
    return REWARD_MAPPINGS.get(mapping)(rts, **params).clamp(max=MAX_GRADED_REWARD)

"""Graded rewards: map an RTS in [0, 1) to a reward strictly below the reward 1 of a correct answer.

A mapping is registered with the names of the options that set its parameters, so its parameters
are built from a config in one place (:meth:`RewardMapping.params`) for every trainer::

    @REWARD_MAPPINGS.register("linear", options={"scale": "linear_scale"})
    def linear(rts, scale=0.5): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from sgpo.core.registry import Registry

#: The largest reward a wrong response can get; keeps float rounding from ever reaching 1.
MAX_GRADED_REWARD = 1.0 - 1e-6


@dataclass(frozen=True)
class RewardMapping:
    """A registered RTS -> reward function and the options that set its keyword parameters."""

    name: str
    fn: Callable[..., torch.Tensor]
    """``fn(rts [...], **params) -> [...]``, increasing in RTS."""
    options: dict[str, str] = field(default_factory=dict)
    """Keyword parameter -> the option that sets it (``algorithm.<option>``, TRL's ``sgpo_<option>``)."""

    def __call__(self, rts: torch.Tensor, **params: float) -> torch.Tensor:
        return self.fn(rts, **params)

    def params(self, options: Mapping[str, Any]) -> dict[str, float]:
        """This mapping's parameters read from option values (e.g. a config section as a dict);
        an option that is absent leaves the function's default."""
        return {param: options[option] for param, option in self.options.items() if option in options}


class MappingRegistry(Registry[RewardMapping]):
    def register(self, name: str, options: dict[str, str] | None = None) -> Callable:  # type: ignore[override]
        """Decorator: register ``fn`` as the mapping ``name``; ``options`` maps its parameters to option names."""

        def add(fn):
            Registry.register(self, name)(RewardMapping(name, fn, dict(options or {})))
            return fn

        return add


REWARD_MAPPINGS = MappingRegistry("reward mapping")


@REWARD_MAPPINGS.register("logistic", options={"beta": "beta", "gamma": "gamma"})
def logistic(rts: torch.Tensor, beta: float = 5.0, gamma: float = 0.5) -> torch.Tensor:
    """f(RTS) = sigmoid(beta * (RTS - gamma)). Shapes: [...] -> [...]."""
    return torch.sigmoid(beta * (rts - gamma))


@REWARD_MAPPINGS.register("linear", options={"scale": "linear_scale"})
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

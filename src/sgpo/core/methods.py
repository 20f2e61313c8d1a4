"""What each method does with a batch of groups: rewards, advantages, and which groups count.

Every method has the same signature, so the trainer and the integrations pick one by name::

    out = METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=ok, params=params)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from sgpo.core.advantages import group_advantages
from sgpo.core.registry import Registry
from sgpo.core.shaping import judge_mask, sgpo_rewards


@dataclass(frozen=True)
class ShapingParams:
    """The knobs of reward shaping and advantage estimation shared by all methods."""

    scope: str = "all_negative"
    """Which wrong responses are graded: ``all_negative`` or ``all_incorrect``."""
    mapping: str = "logistic"
    """RTS -> reward mapping: ``logistic``, ``linear`` or ``raw``."""
    mapping_params: dict[str, float] = field(default_factory=dict)
    """Parameters of the mapping (``beta``, ``gamma`` for logistic; ``scale`` for linear)."""
    scale: str = "group"
    """Advantage scaling: ``group``, ``batch`` or ``none``."""
    eps: float = 1e-6
    """Added to the std in the advantage denominator."""


class MethodOutput(NamedTuple):
    rewards: torch.Tensor
    """[N, G] float rewards after shaping."""
    advantages: torch.Tensor
    """[N, G] float advantages."""
    keep: torch.Tensor
    """[N] bool, groups that enter the loss (DAPO drops zero-variance groups)."""


MethodFn = Callable[..., MethodOutput]
METHODS: Registry[MethodFn] = Registry("method")

#: Methods that need step verdicts from a judge for the responses in ``judge_mask``.
JUDGED_METHODS = frozenset({"sgpo"})
#: Methods that grade the responses in ``judge_mask`` (with a judge's verdicts or without).
GRADING_METHODS = frozenset({"sgpo", "random"})


def _keep_all(outcomes: torch.Tensor) -> torch.Tensor:
    return torch.ones(outcomes.shape[0], dtype=torch.bool, device=outcomes.device)


@METHODS.register("grpo")
def grpo(outcomes: torch.Tensor, params: ShapingParams = ShapingParams(), **_) -> MethodOutput:
    """Plain GRPO: r = o. All-negative groups get zero advantage. [N, G] -> MethodOutput."""
    rewards = outcomes.float()
    return MethodOutput(rewards, group_advantages(rewards, params.scale, params.eps), _keep_all(outcomes))


@METHODS.register("sgpo")
def sgpo(
    outcomes: torch.Tensor,
    rts: torch.Tensor,
    verdict_ok: torch.Tensor,
    params: ShapingParams = ShapingParams(),
    **_,
) -> MethodOutput:
    """SGPO: judged wrong responses in scope get r = f(RTS) < 1.

    Args:
        outcomes: [N, G]; rts: [N, G] RTS from the judge's first-error indices;
        verdict_ok: [N, G] bool, usable verdict. A response in scope without one keeps r = o in
            ``rewards`` but its reward is unknown: it gets advantage 0 and leaves its group's
            statistics (:func:`known_rewards`).
    """
    rewards = sgpo_rewards(outcomes, rts, verdict_ok, params.scope, params.mapping, **params.mapping_params)
    known = known_rewards(outcomes, verdict_ok, params.scope)
    return MethodOutput(rewards, group_advantages(rewards, params.scale, params.eps, known=known), _keep_all(outcomes))


def known_rewards(outcomes: torch.Tensor, verdict_ok: torch.Tensor, scope: str) -> torch.Tensor:
    """[N, G] bool: False where a response in scope has no usable verdict, so its reward is unknown.

    Such a response leaves its group's statistics and gets advantage 0 (DESIGN §2.8): keeping its
    outcome 0 would rank a judge timeout below "wrong at step 0" (f(0) > 0) and push it down hardest.
    """
    return ~(judge_mask(outcomes, scope) & ~verdict_ok)


@METHODS.register("random")
def random_rts(
    outcomes: torch.Tensor,
    params: ShapingParams = ShapingParams(),
    generator: torch.Generator | None = None,
    verdict_ok: torch.Tensor | None = None,
    **_,
) -> MethodOutput:
    """Judge-free control: RTS ~ U[0, 1) for the responses SGPO would grade, same mapping.

    Tells information from mere diversity. Seeded through ``generator``. ``verdict_ok`` ([N, G]
    bool, default all True) marks the responses SGPO could grade at all (the grading step passes
    "has at least one step"), so both methods grade the same responses. [N, G] -> MethodOutput.
    """
    rts = torch.rand(outcomes.shape, generator=generator, device=outcomes.device)
    ok = torch.ones_like(outcomes, dtype=torch.bool) if verdict_ok is None else verdict_ok
    rewards = sgpo_rewards(outcomes, rts, ok, params.scope, params.mapping, **params.mapping_params)
    known = known_rewards(outcomes, ok, params.scope)
    return MethodOutput(rewards, group_advantages(rewards, params.scale, params.eps, known=known), _keep_all(outcomes))


@METHODS.register("dapo")
def dapo(outcomes: torch.Tensor, params: ShapingParams = ShapingParams(), **_) -> MethodOutput:
    """DAPO dynamic sampling: r = o, and groups whose rewards all agree leave the loss.

    Over-sampling prompts to refill the batch is the trainer's job. [N, G] -> MethodOutput.
    """
    rewards = outcomes.float()
    keep = rewards.amax(dim=1) != rewards.amin(dim=1)
    return MethodOutput(rewards, group_advantages(rewards, params.scale, params.eps), keep)


@METHODS.register("ngrpo")
def ngrpo(outcomes: torch.Tensor, params: ShapingParams = ShapingParams(), **_) -> MethodOutput:
    """NGRPO: one virtual reward-1 sample joins each group's mean and std.

    Wrong responses of an all-negative group get negative advantage. [N, G] -> MethodOutput.
    """
    rewards = outcomes.float()
    advantages = group_advantages(rewards, params.scale, params.eps, virtual_reward=1.0)
    return MethodOutput(rewards, advantages, _keep_all(outcomes))


def needs_judge(method: str) -> bool:
    """True if ``method`` needs step verdicts (it is looked up, so typos fail loudly)."""
    METHODS.get(method)
    return method in JUDGED_METHODS


__all__ = ["GRADING_METHODS", "JUDGED_METHODS", "METHODS", "MethodOutput", "ShapingParams", "judge_mask", "known_rewards", "needs_judge"]

"""What each method does with a batch of groups: rewards, advantages, and which groups count.

The method registry is the one list of methods. A method is one function, registered with what it
needs from the trainer around it; every trainer (native, TRL; ``sgpo theory``) and the config
validation read the registry, so registering a function is all it takes to add a method::

    @METHODS.register("sgpo", judges=True, reward_only=True)
    def sgpo(outcomes, rts, verdict_ok, params=ShapingParams(), **_) -> MethodOutput: ...

    out = METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=ok, params=params, generator=gen)

Every method takes ``outcomes`` [N, G] (1 correct, else wrong) and the keywords ``rts`` [N, G]
float, ``verdict_ok`` [N, G] bool (the response was graded: a usable verdict, or for a judge-free
grading method a response with steps; both False outside the method's scope), ``params``
(:class:`ShapingParams`) and ``generator`` (a ``torch.Generator`` for random draws), accepting and
ignoring those it does not use (``**_``), and returns a :class:`MethodOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import torch

from sgpo.core.advantages import SCALES, group_advantages
from sgpo.core.registry import Registry, UnknownName
from sgpo.core.rewards import REWARD_MAPPINGS, graded_reward
from sgpo.core.shaping import SCOPES, judge_mask, restrict_to_scope


@dataclass(frozen=True)
class ShapingParams:
    """The knobs of reward shaping and advantage estimation shared by all methods (checked on construction)."""

    scope: str = "all_negative"
    """Which wrong responses are graded: a name in ``SCOPES`` (``all_negative``, ``all_incorrect``)."""
    mapping: str = "logistic"
    """RTS -> reward mapping: a name in ``REWARD_MAPPINGS`` (``logistic``, ``linear``, ``raw``)."""
    mapping_params: dict[str, float] = field(default_factory=dict)
    """Parameters of the mapping (``beta``, ``gamma`` for logistic; ``scale`` for linear)."""
    scale: str = "group"
    """Advantage scaling: ``group``, ``batch`` or ``none``."""
    eps: float = 1e-6
    """Added to the std in the advantage denominator."""

    def __post_init__(self):
        SCOPES.check(self.scope)
        REWARD_MAPPINGS.check(self.mapping)
        if self.scale not in SCALES:
            raise UnknownName(f"unknown advantage scale {self.scale!r}; choose one of: {', '.join(SCALES)}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], eps: float = 1e-6, prefix: str = "") -> "ShapingParams":
        """The parameters from option values named as the configs name them: ``scope``, ``mapping``,
        ``scale`` and the mapping's own options (``beta``, ``gamma``, ``linear_scale``: see
        ``REWARD_MAPPINGS``); absent ones keep their defaults. An unknown name is an
        :class:`UnknownName` that names the option as ``prefix + key`` (TRL: ``sgpo_scope``)."""
        d = cls()
        scope = SCOPES.check(options.get("scope", d.scope), prefix + "scope")
        mapping = REWARD_MAPPINGS.get(REWARD_MAPPINGS.check(options.get("mapping", d.mapping), prefix + "mapping"))
        return cls(scope, mapping.name, mapping.params(options), options.get("scale", d.scale), eps)


class MethodOutput(NamedTuple):
    rewards: torch.Tensor
    """[N, G] float rewards after shaping."""
    advantages: torch.Tensor
    """[N, G] float advantages."""
    keep: torch.Tensor
    """[N] bool, groups that enter the loss (DAPO drops zero-variance groups)."""
    known: torch.Tensor | None = None
    """[N, G] bool, rewards that are known (None: all). An unknown one (a failed verdict) has
    advantage 0 and is out of its group's statistics; TRL gets it as an unscorable (NaN) row."""


MethodFn = Callable[..., MethodOutput]


@dataclass(frozen=True)
class Method:
    """A registered method: its function and what it needs and does. Called like its function."""

    name: str
    fn: MethodFn
    judges: bool = False
    """Needs a step judge's verdicts (``rts``, ``verdict_ok``) for the responses in its scope."""
    grades: bool = False
    """Grades the responses in its scope: the grading step reads them into steps and passes their
    RTS (with a judge) or, judge-free, marks those with steps in ``verdict_ok``. True if ``judges``."""
    oversamples: bool = False
    """Drops groups from the loss (``keep``), and the native trainer samples
    ``algorithm.dapo_resample_rounds`` extra rounds of prompts to refill the batch. TRL has no
    such sampler: ``SGPOTrainer`` refuses these methods."""
    own_advantages: bool = False
    """Its advantages are not the group-normalised rewards: a trainer that computes advantages from
    the rewards itself (TRL) replaces them with the method's, computed on its summed reward columns."""

    reward_only: bool = False
    """Only changes rewards, response by response: every group is kept, its advantages are
    :func:`shape_graded`'s (the group-normalised rewards, unknown ones left out), and a wrong
    response's reward in scope depends on that response alone (its RTS, verdict or own draw), never
    on its siblings. A trainer that scores one response at a time (verl) can run exactly these: the
    reward of one response is the method's reward for it alone, and :func:`shape_graded` applies the
    scope once the groups are known. Declared, not inferred: only the method's author knows its
    rewards are per response. ``sgpo``, ``random`` and ``grpo`` are."""

    def __post_init__(self):
        if self.reward_only and (self.oversamples or self.own_advantages):
            raise ValueError(f"method {self.name!r}: reward_only excludes oversamples and own_advantages")

    def __call__(self, outcomes: torch.Tensor, **kwargs: Any) -> MethodOutput:
        return self.fn(outcomes, **kwargs)


class MethodRegistry(Registry[Method]):
    def register(self, name: str, *, judges: bool = False, grades: bool = False, oversamples: bool = False,  # type: ignore[override]
                 own_advantages: bool = False, reward_only: bool = False) -> Callable[[MethodFn], MethodFn]:
        """Decorator: register ``fn`` as the method ``name``, with the flags of :class:`Method`."""

        def add(fn: MethodFn) -> MethodFn:
            Registry.register(self, name)(Method(name, fn, judges, judges or grades, oversamples, own_advantages, reward_only))
            return fn

        return add


METHODS = MethodRegistry("method")


def _keep_all(outcomes: torch.Tensor) -> torch.Tensor:
    return torch.ones(outcomes.shape[0], dtype=torch.bool, device=outcomes.device)


def known_rewards(outcomes: torch.Tensor, verdict_ok: torch.Tensor, scope: str) -> torch.Tensor:
    """[N, G] bool: False where a response in scope has no usable verdict, so its reward is unknown.

    Such a response leaves its group's statistics and gets advantage 0: keeping its outcome 0 would
    rank a judge timeout below "wrong at step 0" (f(0) > 0) and push it down hardest.
    """
    return ~(judge_mask(outcomes, scope) & ~verdict_ok)


class Shaped(NamedTuple):
    rewards: torch.Tensor
    """[N, G] float rewards after the scope: the graded reward in scope (where usable), else the outcome."""
    known: torch.Tensor
    """[N, G] bool, the reward is known (False: in scope without a usable grade)."""
    advantages: torch.Tensor
    """[N, G] float group advantages over the known rewards (0 for an unknown one)."""


def shape_graded(outcomes: torch.Tensor, graded: torch.Tensor, usable: torch.Tensor,
                 params: ShapingParams = ShapingParams()) -> Shaped:
    """Graded rewards -> rewards after the method's scope, known rewards and advantages.

    The part every method that only changes rewards shares (``Method.reward_only``): the native
    ``sgpo`` and ``random`` (which differ only in where the RTS comes from), ``grpo``, and verl's
    estimator, which gets each response's graded reward from the reward function before the groups
    are known and so applies the scope here.

    Args:
        outcomes: [N, G] outcomes, 1 correct, else wrong.
        graded: [N, G] float graded rewards; read only where ``usable`` and in scope.
        usable: [N, G] bool, the graded reward is usable (a usable verdict, or, judge-free, a response
            with steps); read only in scope.
        params: the scope, ``scale`` and ``eps`` are used (the mapping is already in ``graded``).

    Returns:
        :class:`Shaped`: rewards = graded in scope where usable, else the outcome; known = False in
        scope where not usable; advantages = ``group_advantages`` of the rewards over the known ones.
    """
    # An unusable grade keeps the outcome in ``rewards`` (what a log shows), but is out of the statistics.
    rewards = restrict_to_scope(outcomes, torch.where(usable, graded, outcomes.float()), params.scope)
    known = known_rewards(outcomes, usable, params.scope)
    return Shaped(rewards, known, group_advantages(rewards, params.scale, params.eps, known=known))


@METHODS.register("grpo", reward_only=True)
def grpo(outcomes: torch.Tensor, params: ShapingParams = ShapingParams(), **_) -> MethodOutput:
    """Plain GRPO: r = o. All-negative groups get zero advantage. [N, G] -> MethodOutput."""
    every = torch.ones_like(outcomes, dtype=torch.bool)  # nothing graded: every reward is the outcome, and known
    out = shape_graded(outcomes, outcomes.float(), every, params)
    return MethodOutput(out.rewards, out.advantages, _keep_all(outcomes))


@METHODS.register("sgpo", judges=True, reward_only=True)
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
    out = shape_graded(outcomes, graded_reward(rts.float(), params.mapping, **params.mapping_params), verdict_ok, params)
    return MethodOutput(out.rewards, out.advantages, _keep_all(outcomes), out.known)


@METHODS.register("random", grades=True, reward_only=True)
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
    return sgpo(outcomes, rts=rts, verdict_ok=ok, params=params)  # SGPO's shaping, a drawn RTS


@METHODS.register("dapo", oversamples=True)
def dapo(outcomes: torch.Tensor, params: ShapingParams = ShapingParams(), **_) -> MethodOutput:
    """DAPO dynamic sampling: r = o, and groups whose rewards all agree leave the loss.

    Over-sampling prompts to refill the batch is the trainer's job. [N, G] -> MethodOutput.
    """
    rewards = outcomes.float()
    keep = rewards.amax(dim=1) != rewards.amin(dim=1)
    return MethodOutput(rewards, group_advantages(rewards, params.scale, params.eps), keep)


@METHODS.register("ngrpo", own_advantages=True)
def ngrpo(outcomes: torch.Tensor, params: ShapingParams = ShapingParams(), **_) -> MethodOutput:
    """NGRPO: one virtual reward-1 sample joins each group's mean and std.

    Wrong responses of an all-negative group get negative advantage. [N, G] -> MethodOutput.
    """
    rewards = outcomes.float()
    advantages = group_advantages(rewards, params.scale, params.eps, virtual_reward=1.0)
    return MethodOutput(rewards, advantages, _keep_all(outcomes))


def needs_judge(method: str) -> bool:
    """True if ``method`` needs step verdicts (it is looked up, so typos fail loudly)."""
    return METHODS.get(method).judges


__all__ = ["METHODS", "Method", "MethodOutput", "Shaped", "ShapingParams", "judge_mask", "known_rewards", "needs_judge",
           "shape_graded"]

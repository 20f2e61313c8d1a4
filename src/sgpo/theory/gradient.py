"""The expected GRPO-style policy gradient in the K-step setting: exactly and by Monte-Carlo.

For a group of G i.i.d. responses y_1..y_G the update direction is

    g(theta) = E[ sum_i A_i * grad log pi(y_i) ],

with A_i the method's advantages (computed by :mod:`sgpo.core`, so the theory runs the very
rewards and advantage formula the trainer uses). A group is fully described by its
*composition* n = (n_0, .., n_K), how many responses have each outcome, so the expectation is a
finite sum over the C(G + K, K) compositions with multinomial weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from typing import NamedTuple

import torch
import torch.nn.functional as F

from sgpo.core import METHODS, ShapingParams, rts_from_steps
from sgpo.theory.model import DTYPE, outcome_log_probs, outcome_scores, sample_outcomes

#: Advantage scales that make sense for one prompt's expected gradient (``batch`` needs a batch).
THEORY_SCALES = ("group", "none")
#: Groups drawn per mixed count to average the ``random`` method's advantages.
RANDOM_DRAWS = 20_000


@dataclass(frozen=True)
class Method:
    """One configuration of a method from ``sgpo.core.METHODS``."""

    name: str
    mapping: str = "logistic"
    scope: str = "all_negative"
    scale: str = "group"
    mapping_params: dict[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        METHODS.get(self.name)  # unknown names fail loudly, listing the choices
        if self.scale not in THEORY_SCALES:
            raise ValueError(f"scale {self.scale!r} is not supported here; choose one of: {', '.join(THEORY_SCALES)}")

    @property
    def graded(self) -> bool:
        """The method grades responses in a scope with a mapping (``sgpo.core.Method.grades``)."""
        return METHODS.get(self.name).grades

    def params(self) -> ShapingParams:
        return ShapingParams(scope=self.scope, mapping=self.mapping, mapping_params=dict(self.mapping_params), scale=self.scale)


def method_advantages(method: Method, outcomes: torch.Tensor, n_steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Advantages of groups of outcomes, through the same core function the trainer calls.

    Args:
        outcomes: [N, G] long outcome indices (c < K: first error at step c; c = K: correct).
        n_steps: K.
        generator: seeds the RTS draws of ``random``.

    Returns:
        [N, G] float64 advantages; groups a method drops from the loss (DAPO) get 0.
    """
    correct = (outcomes == n_steps).float()
    # The judge's verdict in this model: the first incorrect step is the outcome index itself.
    rts = rts_from_steps(outcomes, torch.full_like(outcomes, n_steps))
    ok = torch.ones_like(outcomes, dtype=torch.bool)
    out = METHODS.get(method.name)(correct, rts=rts, verdict_ok=ok, params=method.params(), generator=generator)
    return (out.advantages * out.keep[:, None]).to(DTYPE)


class Compositions(NamedTuple):
    """Every composition of a group of G responses over K + 1 outcomes (M = C(G + K, K) of them)."""

    groups: torch.Tensor
    """[M, G] long: one sorted group of outcome indices per composition."""
    counts: torch.Tensor
    """[M, K + 1] float64: n_c, how many responses have outcome c."""
    log_coef: torch.Tensor
    """[M] float64: log of the multinomial coefficient G! / prod_c n_c!."""

    @property
    def all_negative(self) -> torch.Tensor:
        """[M] bool: compositions without a correct response."""
        return self.counts[:, -1] == 0


def compositions(group_size: int, n_steps: int) -> Compositions:
    """Enumerate the compositions of G responses over the K + 1 outcomes."""
    groups = torch.tensor(list(combinations_with_replacement(range(n_steps + 1), group_size)), dtype=torch.long)
    counts = F.one_hot(groups, n_steps + 1).sum(dim=1).to(DTYPE)
    log_coef = math.lgamma(group_size + 1) - torch.lgamma(counts + 1).sum(dim=1)
    return Compositions(groups, counts, log_coef)


def composition_probs(theta: torch.Tensor, comps: Compositions) -> torch.Tensor:
    """Multinomial P(composition) under theta. [K] -> [M]."""
    return (comps.log_coef + comps.counts @ outcome_log_probs(theta)).exp()


def advantage_weights(method: Method, comps: Compositions, random_draws: int = RANDOM_DRAWS, seed: int = 0) -> torch.Tensor:
    """W[m, c]: the summed (expected) advantage of the responses with outcome c in composition m.

    Advantages depend on the group only, never on theta, so W is computed once per method.
    Responses with the same outcome in a group get the same advantage for every deterministic
    method. For ``random`` the advantage depends on the random RTS draws: see
    :func:`_random_weights`. Returns [M, K + 1] float64.
    """
    n_steps = comps.counts.shape[1] - 1
    if method.name == "random":
        return _random_weights(method, comps, random_draws, seed)
    adv = method_advantages(method, comps.groups, n_steps)
    return torch.einsum("mg,mgc->mc", adv, F.one_hot(comps.groups, n_steps + 1).to(DTYPE))


def _random_weights(method: Method, comps: Compositions, draws: int, seed: int) -> torch.Tensor:
    """Expected advantages of the judge-free ``random`` control, averaged over its random RTS.

    The RTS of a wrong response is drawn uniformly, independent of where it failed, so given the
    number m of correct responses every wrong response has the same expected advantage a_w(m)
    and every correct one a_c(m). a_c(m) is a Monte-Carlo average over ``draws`` seeded draws of
    the core ``random`` method (one draw suffices with scope ``all_negative``: mixed groups are
    not graded); a_w(m) = -m a_c(m) / (G - m) follows exactly because advantages are centred
    within the group. In particular a_w(0) = 0: **in expectation, random RTS give all-negative
    groups no signal at all** -- only noise.
    """
    G = comps.groups.shape[1]
    draws = draws if method.scope == "all_incorrect" else 1
    m = torch.arange(1, G, dtype=torch.long)  # mixed groups: 1..G-1 correct responses
    # Outcome 1 is "correct" with n_steps = 1; outcome 0 stands for any wrong response.
    outcomes = (torch.arange(G)[None, :] < m[:, None]).long().repeat_interleave(draws, dim=0)  # [(G-1) * draws, G]
    adv = method_advantages(method, outcomes, 1, torch.Generator().manual_seed(seed))
    correct_sum = (adv * outcomes).sum(dim=1).reshape(G - 1, draws).mean(dim=1)  # [G - 1]
    a_correct = torch.zeros(G + 1, dtype=DTYPE)
    a_correct[1:G] = correct_sum / m
    a_wrong = torch.zeros(G + 1, dtype=DTYPE)
    a_wrong[1:G] = -correct_sum / (G - m)
    n_correct = comps.counts[:, -1].long()
    wrong = comps.counts[:, :-1] * a_wrong[n_correct, None]
    right = comps.counts[:, -1:] * a_correct[n_correct, None]
    return torch.cat([wrong, right], dim=1)


def expected_gradient(theta: torch.Tensor, comps: Compositions, weights: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """g(theta) = sum_m P(m) sum_c W[m, c] * score_c(theta).

    Args:
        theta: [K] logits.
        comps: the compositions of the group.
        weights: [M, K + 1] from :func:`advantage_weights`.
        where: optional [M] bool, keep only these compositions (e.g. ``comps.all_negative``),
            to split the gradient into what all-negative and other groups contribute.

    Returns:
        [K] float64 expected gradient.
    """
    probs = composition_probs(theta, comps)
    if where is not None:
        probs = probs * where
    return probs @ weights @ outcome_scores(theta)


class ExactGradient:
    """The exact expected gradient of one method for groups of G responses over K steps.

    ``ExactGradient(Method("sgpo"), 8, 2)(theta)`` -> [K].
    """

    def __init__(self, method: Method, group_size: int, n_steps: int, random_draws: int = RANDOM_DRAWS, seed: int = 0):
        self.method = method
        self.comps = compositions(group_size, n_steps)
        self.weights = advantage_weights(method, self.comps, random_draws, seed)

    def __call__(self, theta: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        return expected_gradient(theta, self.comps, self.weights, where)


def monte_carlo_gradient(
    theta: torch.Tensor, method: Method, group_size: int, n_groups: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate g(theta) from ``n_groups`` sampled groups.

    Returns:
        (mean [K], standard error [K]) of the per-group sum_i A_i * score(y_i).
    """
    n_steps = theta.shape[0]
    outcomes = sample_outcomes(theta, n_groups, group_size, generator)  # [B, G]
    adv = method_advantages(method, outcomes, n_steps, generator)  # [B, G]
    per_group = torch.einsum("bg,bgk->bk", adv, outcome_scores(theta)[outcomes])  # [B, K]
    return per_group.mean(dim=0), per_group.std(dim=0) / math.sqrt(n_groups)

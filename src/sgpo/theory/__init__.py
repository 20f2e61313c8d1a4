"""The simplified K-step setting: why grading all-negative groups speeds GRPO up.

A policy solves a problem in K steps, step k right with probability sigmoid(theta_k) given the
earlier ones were right. :mod:`~sgpo.theory.model` gives the outcome probabilities and score
functions, :mod:`~sgpo.theory.gradient` the exact expected gradient of each method (enumerating
group compositions) and its Monte-Carlo estimate, :mod:`~sgpo.theory.dynamics` gradient ascent
on them (the ``sgpo theory`` command: :mod:`sgpo.cli.theory`). See docs/theory.md.
"""

from sgpo.theory.dynamics import Curves, ascend, exact_dynamics, iterations_to, sampled_dynamics
from sgpo.theory.gradient import (
    Compositions,
    ExactGradient,
    Method,
    advantage_weights,
    composition_probs,
    compositions,
    expected_gradient,
    method_advantages,
    monte_carlo_gradient,
)
from sgpo.theory.model import accuracy, as_theta, outcome_probs, outcome_scores, p_all_negative, sample_outcomes

__all__ = [
    "Compositions", "Curves", "ExactGradient", "Method", "accuracy", "advantage_weights", "as_theta",
    "ascend", "composition_probs", "compositions", "exact_dynamics", "expected_gradient", "iterations_to",
    "method_advantages", "monte_carlo_gradient", "outcome_probs", "outcome_scores", "p_all_negative",
    "sample_outcomes", "sampled_dynamics",
]

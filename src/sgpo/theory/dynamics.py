"""Learning dynamics: gradient ascent on the per-step logits with a method's expected gradient."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from sgpo.theory.gradient import ExactGradient, Method, monte_carlo_gradient
from sgpo.theory.model import accuracy, as_theta

GradientFn = Callable[[torch.Tensor], torch.Tensor]


class Curves(NamedTuple):
    """One run of the dynamics, iterations 0..N."""

    theta: torch.Tensor
    """[N + 1, K] per-step logits."""
    accuracy: torch.Tensor
    """[N + 1] expected accuracy P(correct)."""
    p_all_negative: torch.Tensor
    """[N + 1] probability that a group of G responses is all-negative."""


def ascend(theta0, gradient: GradientFn, lr: float, iters: int, group_size: int) -> Curves:
    """theta_{t+1} = theta_t + lr * gradient(theta_t), for ``iters`` iterations."""
    theta = as_theta(theta0)
    path = [theta]
    for _ in range(iters):
        theta = theta + lr * gradient(theta)
        path.append(theta)
    thetas = torch.stack(path)
    acc = torch.stack([accuracy(t) for t in thetas])
    return Curves(thetas, acc, (1.0 - acc) ** group_size)


def exact_dynamics(method: Method, theta0, group_size: int, lr: float, iters: int) -> Curves:
    """Expected dynamics: every step follows the exact expected gradient."""
    theta0 = as_theta(theta0)
    return ascend(theta0, ExactGradient(method, group_size, theta0.shape[0]), lr, iters, group_size)


def sampled_dynamics(method: Method, theta0, group_size: int, lr: float, iters: int, n_groups: int, seed: int = 0) -> Curves:
    """The same dynamics with ``n_groups`` sampled groups per step (stochastic gradient ascent)."""
    generator = torch.Generator().manual_seed(seed)

    def gradient(theta: torch.Tensor) -> torch.Tensor:
        return monte_carlo_gradient(theta, method, group_size, n_groups, generator)[0]

    return ascend(theta0, gradient, lr, iters, group_size)


def iterations_to(acc: torch.Tensor, level: float) -> int | None:
    """First iteration at which the expected accuracy reaches ``level``; None if it never does."""
    hit = torch.nonzero(acc >= level)
    return int(hit[0]) if len(hit) else None

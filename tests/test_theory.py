"""The simplified K-step setting: exact expected gradients, Monte-Carlo, dynamics and `sgpo theory`.

The exact gradient is checked three independent ways: against finite differences of an
expected objective wherever the expected update *is* the gradient of one, against the K = 2
closed forms of docs/theory.md, and against Monte-Carlo averages of sampled groups.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from sgpo.cli import main
from sgpo.cli.theory import add_arguments
from sgpo.core import graded_reward
from sgpo.theory import (
    ExactGradient,
    Method,
    accuracy,
    as_theta,
    composition_probs,
    compositions,
    exact_dynamics,
    expected_gradient,
    iterations_to,
    monte_carlo_gradient,
    outcome_probs,
    outcome_scores,
    p_all_negative,
    sampled_dynamics,
)

G = 8
THETAS = [(-0.7, 0.4), (-2.0, -1.0), (0.5, -1.5, 0.2)]  # K = 2 and K = 3, with mixed groups common enough


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: on a busy CPU, intra-op threads only add waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def finite_difference(fn, theta: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """Central differences of a scalar function of theta. [K] -> [K]."""
    eye = torch.eye(theta.shape[0], dtype=theta.dtype)
    return torch.stack([(fn(theta + h * e) - fn(theta - h * e)) / (2 * h) for e in eye])


def default_args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize("theta", THETAS)
def test_outcomes_are_a_distribution_and_scores_are_grad_log_probs(theta):
    theta = as_theta(theta)
    q = outcome_probs(theta)
    assert q.shape == (theta.shape[0] + 1,)
    assert torch.isclose(q.sum(), torch.tensor(1.0, dtype=q.dtype))
    assert torch.isclose(q[-1], torch.sigmoid(theta).prod())
    scores = outcome_scores(theta)
    for c in range(len(q)):
        fd = finite_difference(lambda t: outcome_probs(t)[c].log(), theta)
        torch.testing.assert_close(scores[c], fd, rtol=1e-6, atol=1e-8)


def test_two_step_outcomes_match_the_definition():
    theta = as_theta((-1.0, 0.5))
    p1, p2 = torch.sigmoid(theta)
    torch.testing.assert_close(outcome_probs(theta), torch.stack([1 - p1, p1 * (1 - p2), p1 * p2]))


def test_compositions_are_all_groups_with_multinomial_weights():
    comps = compositions(G, 2)
    assert comps.groups.shape == (math.comb(G + 2, 2), G)
    assert (comps.counts.sum(dim=1) == G).all()
    theta = as_theta((-0.3, 1.1))
    probs = composition_probs(theta, comps)
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0, dtype=probs.dtype))
    torch.testing.assert_close(probs[comps.all_negative].sum(), p_all_negative(theta, G))


# ---------------------------------------------------------------- exact gradient vs finite differences


@pytest.mark.parametrize("theta", THETAS)
def test_score_function_identity_on_the_composition_sum(theta):
    """A shared advantage phi(n) for every response of a group gives g = grad E[phi(n)].

    With phi = 1[all-negative], E[phi] = (1 - acc)^G: this checks enumeration, multinomial
    weights and scores together against a closed-form objective.
    """
    theta = as_theta(theta)
    comps = compositions(G, theta.shape[0])
    weights = comps.counts * comps.all_negative[:, None]
    fd = finite_difference(lambda t: p_all_negative(t, G), theta)
    torch.testing.assert_close(expected_gradient(theta, comps, weights), fd, rtol=1e-6, atol=1e-9)


def _graded_rewards(K: int, mapping: str) -> torch.Tensor:
    """Per-outcome reward when every wrong response is graded: f(c / K), and 1 if correct. [K + 1]."""
    rts = torch.arange(K, dtype=torch.float32) / K
    return torch.cat([graded_reward(rts, mapping).double(), torch.ones(1, dtype=torch.float64)])


@pytest.mark.parametrize("theta", THETAS)
@pytest.mark.parametrize(
    "method, factor, rewards",
    [
        # A_i = r_i - mean r: E[sum_i r_i s_i] = G grad J and E[mean r * sum_i s_i] = grad J.
        (Method("grpo", scale="none"), lambda g: g - 1, lambda K: torch.eye(K + 1, dtype=torch.float64)[-1]),
        (Method("sgpo", "logistic", "all_incorrect", "none"), lambda g: g - 1, lambda K: _graded_rewards(K, "logistic")),
        (Method("sgpo", "raw", "all_incorrect", "none"), lambda g: g - 1, lambda K: _graded_rewards(K, "raw")),
        # NGRPO: the virtual reward-1 sample makes the baseline (G mean r + 1) / (G + 1).
        (Method("ngrpo", scale="none"), lambda g: g * g / (g + 1), lambda K: torch.eye(K + 1, dtype=torch.float64)[-1]),
    ],
    ids=["grpo", "sgpo-logistic", "sgpo-raw", "ngrpo"],
)
def test_without_std_normalisation_the_update_is_a_gradient_of_expected_reward(theta, method, factor, rewards):
    """With scale=none and rewards that depend on the response alone, g = c_G * grad E_y[r(y)]."""
    theta = as_theta(theta)
    K = theta.shape[0]
    r = rewards(K)
    fd = finite_difference(lambda t: outcome_probs(t) @ r, theta)
    exact = ExactGradient(method, G, K)(theta)
    # Advantages come from sgpo.core in float32, hence the tolerance.
    torch.testing.assert_close(exact, factor(G) * fd, rtol=1e-5, atol=1e-7)


def test_random_rts_without_std_normalisation_is_the_gradient_of_its_mean_reward():
    """Uniform RTS through the logistic mapping has mean reward 1/2 (the sigmoid is odd about
    gamma = 1/2), so J = acc + (1 - acc) / 2. The exact weights average seeded draws: 1% tolerance."""
    theta = as_theta((-0.7, 0.4))
    exact = ExactGradient(Method("random", "logistic", "all_incorrect", "none"), G, 2)(theta)
    fd = finite_difference(lambda t: 0.5 + 0.5 * accuracy(t), theta)
    torch.testing.assert_close(exact, (G - 1) * fd, rtol=1e-2, atol=0)


# ---------------------------------------------------------------- where gradients must vanish or agree


@pytest.mark.parametrize("scale", ["group", "none"])
def test_grpo_learns_nothing_from_all_negative_groups(scale):
    exact = ExactGradient(Method("grpo", scale=scale), G, 2)
    assert torch.count_nonzero(exact.weights[exact.comps.all_negative]) == 0
    theta = as_theta((-3.0, -3.0))
    assert torch.count_nonzero(exact(theta, where=exact.comps.all_negative)) == 0
    assert (exact(theta) > 0).all()  # but the rare mixed groups do teach


def test_sgpo_changes_only_the_all_negative_groups_and_random_rts_gives_them_nothing():
    theta = as_theta((-3.0, -3.0))
    grpo = ExactGradient(Method("grpo"), G, 2)
    sgpo = ExactGradient(Method("sgpo"), G, 2)
    rand = ExactGradient(Method("random"), G, 2)
    mixed = ~grpo.comps.all_negative
    # Scope all_negative: mixed groups keep 0/1 rewards, so exactly GRPO's advantages there.
    assert torch.equal(sgpo(theta, where=mixed), grpo(theta, where=mixed))
    assert (sgpo(theta) - grpo(theta)).abs().max() > 0.1 * grpo(theta).abs().max()
    # Random RTS do not depend on where a response failed: zero expected signal (only noise).
    assert torch.count_nonzero(rand(theta, where=rand.comps.all_negative)) == 0
    torch.testing.assert_close(rand(theta), grpo(theta))


@pytest.mark.parametrize("theta", [(-3.0, -3.0), (-0.5, 1.0)])
def test_two_step_closed_forms(theta):
    """docs/theory.md: g_GRPO = E_m[sqrt((G-1) m (G-m) / G)] / (1 - a) * (1 - p1, 1 - p2), m ~ Bin(G, a),
    and SGPO adds (1 - a)^G E_N[sqrt((G-1) N (G-N) / G)] * (1, -p2), N ~ Bin(G, pi), with
    a = p1 p2 the accuracy and pi = p1 (1 - p2) / (1 - a) -- for every increasing mapping."""
    theta = as_theta(theta)
    p1, p2 = torch.sigmoid(theta)
    a = p1 * p2
    pi = p1 * (1 - p2) / (1 - a)

    def e_sqrt(prob):
        m = torch.arange(G + 1, dtype=torch.float64)
        pmf = torch.tensor([math.comb(G, k) for k in range(G + 1)], dtype=torch.float64) * prob**m * (1 - prob) ** (G - m)
        return pmf @ torch.sqrt((G - 1) * m * (G - m) / G)

    grpo = e_sqrt(a) / (1 - a) * torch.stack([1 - p1, 1 - p2])
    extra = (1 - a) ** G * e_sqrt(pi) * torch.stack([torch.ones_like(p2), -p2])
    torch.testing.assert_close(ExactGradient(Method("grpo"), G, 2)(theta), grpo, rtol=1e-5, atol=1e-9)
    for mapping in ["logistic", "linear", "raw"]:
        got = ExactGradient(Method("sgpo", mapping), G, 2)(theta)
        # The closed form drops the eps = 1e-6 added to the std; a small reward gap amplifies it.
        torch.testing.assert_close(got, grpo + extra, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("mapping", ["logistic", "linear", "raw"])
def test_two_step_closed_form_without_std_normalisation(mapping):
    """docs/theory.md: g_SGPO = (G - 1) a (1 - p1, 1 - p2) + df (1 - a)^G (G - 1) pi (1 - pi) (1, -p2),
    where df = f(1/2) - f(0) is the reward gap the judge creates."""
    theta = as_theta((-2.5, -1.0))
    p1, p2 = torch.sigmoid(theta)
    a = p1 * p2
    pi = p1 * (1 - p2) / (1 - a)
    df = (graded_reward(torch.tensor(0.5), mapping) - graded_reward(torch.tensor(0.0), mapping)).double()
    expected = (G - 1) * a * torch.stack([1 - p1, 1 - p2]) + df * (1 - a) ** G * (G - 1) * pi * (1 - pi) * torch.stack(
        [torch.ones_like(p2), -p2]
    )
    torch.testing.assert_close(ExactGradient(Method("sgpo", mapping, scale="none"), G, 2)(theta), expected, rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------- Monte-Carlo


@pytest.mark.parametrize(
    "method",
    [
        Method("grpo"), Method("sgpo"), Method("sgpo", "linear", "all_incorrect"), Method("sgpo", "raw", scale="none"),
        Method("ngrpo"), Method("random"), Method("random", "logistic", "all_incorrect"), Method("dapo"),
    ],
    ids=lambda m: f"{m.name}-{m.mapping}-{m.scope}-{m.scale}",
)
@pytest.mark.parametrize("theta", [(-1.5, -1.0), (0.5, -1.5, 0.2)])
def test_sampled_mean_gradient_matches_the_exact_one_within_its_standard_error(method, theta):
    theta = as_theta(theta)
    generator = torch.Generator().manual_seed(1234)
    mean, stderr = monte_carlo_gradient(theta, method, G, 20_000, generator)
    exact = ExactGradient(method, G, theta.shape[0])(theta)
    assert (stderr > 0).all()
    assert ((mean - exact).abs() <= 4 * stderr).all(), (mean, exact, stderr)


# ---------------------------------------------------------------- dynamics and the command


def test_sgpo_is_faster_than_grpo_from_the_default_start():
    args = default_args()
    theta0 = as_theta(args.theta0)
    assert p_all_negative(theta0, args.group_size) > 0.95  # almost every group is all-negative
    curves = {m: exact_dynamics(Method(m), theta0, args.group_size, args.lr, args.iters) for m in ["grpo", "sgpo"]}
    for level in args.levels:
        sgpo, grpo = (iterations_to(curves[m].accuracy, level) for m in ["sgpo", "grpo"])
        assert sgpo is not None and grpo is not None and sgpo < grpo, (level, sgpo, grpo)
    assert curves["sgpo"].p_all_negative[20] < curves["grpo"].p_all_negative[20]


def test_the_advantage_vanishes_once_step_one_is_solved_and_reverses_with_a_decreasing_mapping():
    """If step 1 is always right, every all-negative group fails at step 2: all its graded rewards
    are equal, so SGPO is GRPO. A decreasing mapping rewards failing early and never gets going."""
    theta0 = (8.0, -3.0)
    grpo = exact_dynamics(Method("grpo"), theta0, G, 0.1, 300)
    sgpo = exact_dynamics(Method("sgpo"), theta0, G, 0.1, 300)
    assert iterations_to(sgpo.accuracy, 0.9) is not None
    assert abs(iterations_to(sgpo.accuracy, 0.9) - iterations_to(grpo.accuracy, 0.9)) <= 1
    decreasing = exact_dynamics(Method("sgpo", mapping_params={"beta": -5.0}), (-3.0, -3.0), G, 0.1, 300)
    assert iterations_to(decreasing.accuracy, 0.5) is None
    assert decreasing.theta[-1, 0] < -3.0  # it pushed step 1 the wrong way


def test_sampled_dynamics_follow_the_expected_dynamics():
    exact = exact_dynamics(Method("sgpo"), (-3.0, -3.0), G, 0.1, 60)
    sampled = sampled_dynamics(Method("sgpo"), (-3.0, -3.0), G, 0.1, 60, n_groups=2000, seed=0)
    assert (sampled.accuracy - exact.accuracy).abs().max() < 0.05


def test_cli_prints_one_line_per_method_and_writes_plots_and_curves(tmp_path, capsys):
    assert main(["theory", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in default_args().methods}
    assert sorted(rows) == sorted(default_args().methods)
    assert sum(line.startswith(("grpo", "sgpo", "ngrpo", "random")) for line in lines) == 4
    assert int(rows["sgpo"][4]) < int(rows["grpo"][4])  # iterations to 50%
    for name in ["accuracy.png", "all_negative.png", "curves.json"]:
        assert (tmp_path / name).stat().st_size > 0
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert [run["method"] for run in curves["runs"]] == default_args().methods
    assert len(curves["runs"][0]["exact"]["accuracy"]) == default_args().iters + 1


def test_cli_k_steps_several_mappings_and_sampled_dynamics(tmp_path, capsys):
    argv = ["theory", "--steps-k", "3", "--theta0", "-2", "--iters", "30", "--methods", "grpo", "sgpo",
            "--mapping", "logistic", "linear", "--scale", "group", "none", "--mc-groups", "64", "--out", str(tmp_path)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("grpo") for line in lines) == 2  # one per scale
    assert sum(line.startswith("sgpo") for line in lines) == 4  # mapping x scale
    run = json.loads((tmp_path / "curves.json").read_text())["runs"][0]
    assert len(run["exact"]["theta"][0]) == 3 and "sampled" in run

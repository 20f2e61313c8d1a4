"""verl's own advantage step with ``algorithm.adv_estimator=sgpo`` equals ``sgpo.grading.grade``.

The algorithm config is verl's real one (its ppo_trainer.yaml composed by Hydra with the overrides
a user types), and the advantages come from the functions verl's trainers call:
``ray_trainer.compute_advantage`` (legacy trainer) and ``v1.utils.compute_advantage_for_multi_trajectories``
(the v1 trainer), on a real ``DataProto``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import verl
from hydra import compose, initialize_config_dir
from test_verl_estimator import G, reward_fn_scores, scenario, verl_batch
from verl import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.v1 import trainer_base
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

from sgpo.core import ShapingParams
from sgpo.grading import GradingSettings, grade
from sgpo.tasks.arith import ArithRuleJudge

CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")


def algorithm_config(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=["algorithm.adv_estimator=sgpo", *overrides])
    return cfg


def verl_advantages(cfg, rewards, mask, uids, v1=False):
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": np.array(uids, dtype=object)})
    kwargs = dict(adv_estimator=cfg.algorithm.adv_estimator, gamma=cfg.algorithm.gamma, lam=cfg.algorithm.lam,
                  num_repeat=G, norm_adv_by_std_in_grpo=cfg.algorithm.get("norm_adv_by_std_in_grpo", True),
                  config=cfg.algorithm)
    if v1:
        keys = [f"{uid}_{i}_0" for i, uid in enumerate(uids)]  # {uid}_{session}_{output}: one output per session
        out = compute_advantage_for_multi_trajectories(data, batch_keys=keys, **kwargs)
    else:
        out = compute_advantage(data, **kwargs)
    torch.testing.assert_close(out.batch["advantages"], out.batch["returns"])
    return out.batch["advantages"]


@pytest.mark.parametrize("v1", [False, True], ids=["ray_trainer", "v1"])
@pytest.mark.parametrize("overrides,params", [
    ([], ShapingParams()),
    (["algorithm.norm_adv_by_std_in_grpo=false"], ShapingParams(scale="none")),
    (["+algorithm.sgpo.scope=all_incorrect"], ShapingParams(scope="all_incorrect")),
], ids=["default", "dr_grpo", "all_incorrect"])
def test_verl_compute_advantage_equals_native_grading(v1, overrides, params):
    problems, texts = scenario()
    results = reward_fn_scores(problems, texts)
    outcomes = torch.tensor([r["acc"] for r in results]).view(-1, G)
    native = grade(problems, texts, outcomes, GradingSettings("sgpo", params, "line"), judge=ArithRuleJudge())
    order, rewards, mask, uids = verl_batch(problems, texts, [r["score"] for r in results], seed=3)
    assert len(set(uids[:G])) > 1, "groups are interleaved in the batch"
    got = verl_advantages(algorithm_config(*overrides), rewards, mask, uids, v1=v1)
    expected = native.advantages.reshape(-1)[order]
    torch.testing.assert_close(got, expected[:, None] * mask)
    mixed_wrong = [order.index(i) for i in (5, 6, 7)]  # graded by the reward function, outside the scope
    if params.scope == "all_negative":
        grpo = (torch.tensor([1.0, 0, 0, 0]) - 0.25) / (torch.tensor([1.0, 0, 0, 0]).std() + 1e-6)
        if params.scale == "none":
            grpo = torch.tensor([1.0, 0, 0, 0]) - 0.25
        torch.testing.assert_close(got[mixed_wrong].sum(dim=1) / mask[mixed_wrong].sum(dim=1), grpo[1:])
    assert got[[order.index(i) for i in (12, 13, 14, 15, 19)]].abs().sum() == 0  # failed verdicts: unknown, 0
    assert got[[order.index(i) for i in range(0, 4)]].abs().sum() > 0  # all-negative group recovered
    # the judge cost, as the estimator counted it on this (the driver's) process
    from sgpo.integrations.verl.plugin import LAST_STATS

    assert LAST_STATS["sgpo/verl_extra_judged"] == (3 if params.scope == "all_negative" else 0)
    assert LAST_STATS["sgpo/judged_responses"] == (12 if params.scope == "all_negative" else 15)
    assert LAST_STATS["groups/mixed_frac"] == pytest.approx(1 / 5)
    assert LAST_STATS["sgpo/judge_failures"] == (5 if params.scope == "all_negative" else 6)


@pytest.mark.parametrize("v1", [False, True], ids=["ray_trainer", "v1"])
def test_random_through_verl_equals_native_grading_on_the_same_draws(v1, monkeypatch):
    """``+algorithm.sgpo.method=random``: verl's own advantage step on the reward function's drawn scores equals
    the native ``grade`` of ``random`` given the same draws (the score is RTS / 2 exactly under this mapping)."""
    mapping = {"mapping": "linear", "mapping_params": {"scale": 0.5}}
    problems, texts = scenario()
    results = reward_fn_scores(problems, texts, method="random", **mapping)
    assert {r["judge_status"] for r in results} == {"skipped", "drawn", "no_steps"}
    outcomes = torch.tensor([r["acc"] for r in results]).view(-1, G)
    drawn = torch.tensor([r["score"] * 2 for r in results]).view(-1, G)
    with monkeypatch.context() as m:
        m.setattr(torch, "rand", lambda shape, generator=None, device=None: drawn.clone())  # the native control's draw
        native = grade(problems, texts, outcomes, GradingSettings("random", ShapingParams(**mapping), "line"))
    order, rewards, mask, uids = verl_batch(problems, texts, [r["score"] for r in results], seed=3)
    got = verl_advantages(algorithm_config("+algorithm.sgpo.method=random"), rewards, mask, uids, v1=v1)
    torch.testing.assert_close(got, native.advantages.reshape(-1)[order][:, None] * mask)
    assert got[[order.index(i) for i in range(12, 16)]].abs().sum() > 0  # no judge needed: the broken group learns
    from sgpo.integrations.verl.plugin import LAST_STATS

    assert LAST_STATS["sgpo/judged_responses"] == 0 and LAST_STATS["sgpo/verl_dropped_grades"] == 2


def test_in_reward_kl_is_refused():
    problems, texts = scenario()
    _, rewards, mask, uids = verl_batch(problems, texts, [0.0] * len(texts))
    with pytest.raises(ValueError, match="use_kl_in_reward"):
        verl_advantages(algorithm_config("algorithm.use_kl_in_reward=true"), rewards, mask, uids)


def session_batch(scores, keys, lengths):
    """A v1 batch: one row per output, the session's final score on every output (as verl's agent loop
    copies it), the prompt uid from the key."""
    T = max(lengths)
    rewards, mask = torch.zeros(len(keys), T), torch.zeros(len(keys), T)
    for row, (score, n) in enumerate(zip(scores, lengths)):
        mask[row, :n] = 1
        rewards[row, n - 1] = score
    uids = np.array([k.rsplit("_", 2)[0] for k in keys], dtype=object)
    return DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": uids})


def v1_advantages(estimator, scores, keys, lengths, fn=compute_advantage_for_multi_trajectories):
    cfg = algorithm_config(f"algorithm.adv_estimator={estimator}")
    out = fn(session_batch(scores, keys, lengths), batch_keys=keys, adv_estimator=cfg.algorithm.adv_estimator,
             num_repeat=2, norm_adv_by_std_in_grpo=True, config=cfg.algorithm)
    return out.batch["advantages"], out.batch["response_mask"]


def test_multi_output_sessions_get_verl_grpo_advantages():
    """The issue's example: session u_0 has two outputs (both carry its score 1), u_1 one (score 0).
    verl's GRPO takes one row per session; so does sgpo, through the trainer's own reference to the function."""
    keys, scores, lengths = ["u_0_0", "u_0_1", "u_1_0"], [1.0, 1.0, 0.0], [3, 5, 4]
    assert trainer_base.compute_advantage_for_multi_trajectories is compute_advantage_for_multi_trajectories
    grpo, mask = v1_advantages("grpo", scores, keys, lengths)
    sgpo, _ = v1_advantages("sgpo", scores, keys, lengths)
    torch.testing.assert_close(sgpo, grpo)
    torch.testing.assert_close(sgpo[:, 0], torch.tensor([0.7071, 0.7071, -0.7071]), atol=1e-4, rtol=0)
    torch.testing.assert_close(sgpo, sgpo[:, :1] * mask)  # broadcast over each output's own tokens
    # the control: verl's unwrapped function hands sgpo every output as a group member
    unwrapped, _ = v1_advantages("sgpo", scores, keys, lengths,
                                 fn=compute_advantage_for_multi_trajectories.__wrapped__)
    torch.testing.assert_close(unwrapped[:, 0], torch.tensor([0.5774, 0.5774, -1.1547]), atol=1e-4, rtol=0)


def test_multi_output_all_negative_group_is_graded_once_per_session():
    """An all-negative group whose sessions have 1, 3 and 2 outputs: SGPO's advantages over the three
    sessions (native grading of three graded rewards), broadcast to every output of each session."""
    keys = ["p_0_0", "q_0_0", "p_1_0", "p_1_1", "p_1_2", "q_1_0", "p_2_0", "p_2_1"]
    p_scores = {0: 0.2, 1: 0.6, 2: 0.6}
    scores = [p_scores[int(k.split("_")[1])] if k[0] == "p" else float(k.split("_")[1]) for k in keys]
    lengths = [2, 3, 4, 2, 5, 3, 2, 4]
    got, mask = v1_advantages("sgpo", scores, keys, lengths)
    r = torch.tensor([0.2, 0.6, 0.6])
    per_session = (r - r.mean()) / (r.std() + 1e-6)
    expected = per_session[[0, 1, 1, 1, 2, 2]]
    p_rows = [i for i, k in enumerate(keys) if k[0] == "p"]
    torch.testing.assert_close(got[p_rows], expected[:, None] * mask[p_rows])
    q_rows = [i for i, k in enumerate(keys) if k[0] == "q"]  # a plain GRPO group of two sessions [0, 1]
    torch.testing.assert_close(got[q_rows, 0], torch.tensor([-0.7071, 0.7071]), atol=1e-4, rtol=0)

"""Configurations the ``sgpo`` estimator refuses stop verl at start-up: the plugin's wrapper around
verl's ``validate_config`` (what ``main_ppo`` runs on the driver before Ray starts)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import verl
import verl.utils.config
from hydra import compose, initialize_config_dir
from verl.trainer.ppo.utils import need_critic, need_reference_policy

from sgpo.errors import ConfigError

CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")
#: the smallest overrides under which verl's own checks pass on the default config
VALID = ["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
         "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
         "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=1"]


def validate(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=[*VALID, *overrides])
    verl.utils.config.validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def test_filter_groups_on_acc_is_refused_and_on_the_graded_reward_allowed():
    dapo = ["algorithm.filter_groups.enable=true"]
    with pytest.raises(ConfigError, match="filter_groups.metric=acc: .*every all-negative group") as e:
        validate("algorithm.adv_estimator=sgpo", *dapo, "algorithm.filter_groups.metric=acc")
    assert "\n" not in str(e.value)
    validate("algorithm.adv_estimator=sgpo", *dapo, "algorithm.filter_groups.metric=reward")
    validate("algorithm.adv_estimator=sgpo", *dapo, "algorithm.filter_groups.metric=score")
    validate("algorithm.adv_estimator=sgpo", "algorithm.filter_groups.metric=acc")  # filtering off
    validate("algorithm.adv_estimator=grpo", *dapo, "algorithm.filter_groups.metric=acc")  # not ours to refuse


def test_a_colocated_hosted_judge_is_refused():
    """verl's v1 trainer sends a colocated reward model's reward loop no data_source / ground truth
    (measured: KeyError 'data_source' in the naive manager); a judge pool of its own is required."""
    judge = ["reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward",
             "reward.reward_model.enable=true", "reward.reward_model.model_path=/models/judge"]
    with pytest.raises(ConfigError, match="needs reward.reward_model.enable_resource_pool=True") as e:
        validate("algorithm.adv_estimator=sgpo", *judge)
    assert "\n" not in str(e.value)
    validate("algorithm.adv_estimator=sgpo", *judge, "reward.reward_model.enable_resource_pool=true",
             "reward.reward_model.n_gpus_per_node=1", "reward.reward_model.nnodes=1")


def test_the_method_is_checked_against_the_registry_and_the_reward_function():
    """``+algorithm.sgpo.method`` names a registered method verl can run, and sgpo's reward function must
    grade for the same one (it gets reward_kwargs, not the algorithm section)."""
    reward = ["reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward"]
    with pytest.raises(ConfigError, match="algorithm.sgpo.method=ngrpo: verl runs only methods that change rewards") as e:
        validate("algorithm.adv_estimator=sgpo", "+algorithm.sgpo.method=ngrpo")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="algorithm.sgpo.method=random but sgpo's reward function grades for "
                                          "reward.custom_reward_function.reward_kwargs.method=sgpo") as e:
        validate("algorithm.adv_estimator=sgpo", "+algorithm.sgpo.method=random", *reward)
    assert "\n" not in str(e.value)
    validate("algorithm.adv_estimator=sgpo", "+algorithm.sgpo.method=random", *reward,
             "+reward.custom_reward_function.reward_kwargs.method=random")
    validate("algorithm.adv_estimator=sgpo", "+algorithm.sgpo.method=random")  # another reward function: its business
    with pytest.raises(ConfigError, match="method=sgpo but .*reward_kwargs.method=grpo"):
        validate("algorithm.adv_estimator=sgpo", *reward, "+reward.custom_reward_function.reward_kwargs.method=grpo")


def test_main_ppo_refuses_at_start_up(tmp_path):
    """The real entry point: it exits with sgpo's reason before Ray is started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    out = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", "algorithm.adv_estimator=sgpo",
         "algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # hydra writes outputs/ in the cwd
    assert out.returncode != 0
    assert "ConfigError: algorithm.adv_estimator=sgpo refuses algorithm.filter_groups.metric=acc" in out.stderr
    assert "ray init" not in out.stdout + out.stderr

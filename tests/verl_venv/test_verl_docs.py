"""The commands docs/scale.md tells a verl user to type compose with verl's own config, pass sgpo's
start-up checks, and the reward function they name loads through verl's loader with the documented
reward_kwargs."""

import asyncio
import inspect
import re
import shlex
from pathlib import Path

import verl
from hydra import compose, initialize_config_dir
from verl.trainer.ppo.reward import get_custom_reward_fn

from sgpo.integrations.verl.estimator import options_from_config
from sgpo.integrations.verl.plugin import check_reward_model

DOC = Path(__file__).resolve().parents[2] / "docs" / "scale.md"
CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")


def documented_commands(tmp_path):
    """The overrides of every ``main_ppo`` command in the doc, in order."""
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S) if "verl.trainer.main_ppo" in b]
    commands = []
    for block in blocks:
        words = shlex.split(block.replace("\\\n", " ").replace("$HOME", str(tmp_path)).replace("$PWD", str(tmp_path)))
        assert words[:3] == ["python", "-m", "verl.trainer.main_ppo"]
        commands.append(words[3:])
    return commands


def compose_with(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def score(fn, **kwargs):
    out = fn(**kwargs)
    return asyncio.run(out) if inspect.iscoroutine(out) else out


def test_documented_commands_compose(tmp_path):
    (tmp_path / "judge.yaml").write_text("judge:\n  kind: rule\n")
    commands = documented_commands(tmp_path)
    assert len(commands) == 2  # a judge server of one's own, and a judge hosted by verl
    for overrides in commands:
        cfg = compose_with(overrides)
        assert cfg.algorithm.adv_estimator == "sgpo"
        assert options_from_config(cfg.algorithm) == {"method": "sgpo", "scope": "all_negative", "scale": "group",
                                                      "eps": 1e-6}
        check_reward_model(cfg)  # what the plugin checks at start-up
        fn = get_custom_reward_fn(cfg)  # verl's loader, with reward_kwargs merged in
        assert inspect.iscoroutinefunction(fn)  # verl awaits it
    hosted = compose_with(commands[1])
    assert hosted.reward.reward_model.enable and hosted.reward.reward_model.enable_resource_pool
    fn = get_custom_reward_fn(compose_with(commands[0]))
    out = score(fn, data_source="sgpo/arith", solution_str="2 * 5 = 10\nAnswer: 10", ground_truth="10",
                extra_info={"question": "Start with 2. Multiply by 5."})
    assert out["score"] == 1.0


def test_documented_options_compose(tmp_path):
    text = DOC.read_text()
    options = re.findall(r"^\| `([+a-z_.]+=[^`]+)` \|", text, re.M)
    assert len(options) >= 12
    (tmp_path / "judge.yaml").write_text("judge:\n  kind: rule\n")
    cfg = compose_with(documented_commands(tmp_path)[0] + options + [
        "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=sgpo.integrations.verl.plugin"])
    assert options_from_config(cfg.algorithm) == {"method": "random", "scope": "all_incorrect", "scale": "none",
                                                  "eps": 1e-6}
    kwargs = cfg.reward.custom_reward_function.reward_kwargs
    assert kwargs.method == "random" and kwargs.seed == 0  # the reward function grades for the estimator's method
    assert kwargs.task == "arith" and kwargs.judge.kind == "llm_http" and kwargs.mapping == "linear"
    assert cfg.reward.reward_manager.name == "SGPORewardManager" and kwargs.group_wait_s == 300
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    from sgpo.integrations.verl.manager import SGPORewardManager

    assert resolve_reward_manager_cls(cfg) is SGPORewardManager  # verl's loader finds sgpo's manager

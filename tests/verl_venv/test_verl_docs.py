"""The command docs/scale.md tells a verl user to type composes with verl's own config, and the
reward function it names loads through verl's loader with the documented reward_kwargs."""

import re
import shlex
from pathlib import Path

import verl
from hydra import compose, initialize_config_dir
from verl.trainer.ppo.reward import get_custom_reward_fn

from sgpo.integrations.verl.estimator import options_from_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "scale.md"
CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")


def documented_overrides(tmp_path):
    text = DOC.read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "verl.trainer.main_ppo" in b)
    words = shlex.split(block.replace("\\\n", " ").replace("$HOME", str(tmp_path)).replace("$PWD", str(tmp_path)))
    assert words[:3] == ["python", "-m", "verl.trainer.main_ppo"]
    return words[3:]


def compose_with(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def test_documented_command_composes(tmp_path):
    (tmp_path / "judge.yaml").write_text("judge:\n  kind: rule\n")
    cfg = compose_with(documented_overrides(tmp_path))
    assert cfg.algorithm.adv_estimator == "sgpo"
    assert options_from_config(cfg.algorithm) == {"scope": "all_negative", "scale": "group", "eps": 1e-6}
    fn = get_custom_reward_fn(cfg)  # verl's loader, with reward_kwargs merged in
    out = fn(data_source="sgpo/arith", solution_str="2 * 5 = 10\nAnswer: 10", ground_truth="10",
             extra_info={"question": "Start with 2. Multiply by 5."})
    assert out["score"] == 1.0


def test_documented_options_compose(tmp_path):
    text = DOC.read_text()
    options = re.findall(r"^\| `([+a-z_.]+=[^`]+)` \|", text, re.M)
    assert len(options) >= 8
    (tmp_path / "judge.yaml").write_text("judge:\n  kind: rule\n")
    cfg = compose_with(documented_overrides(tmp_path) + options + [
        "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=sgpo.integrations.verl.plugin"])
    assert options_from_config(cfg.algorithm) == {"scope": "all_incorrect", "scale": "none", "eps": 1e-6}
    kwargs = cfg.reward.custom_reward_function.reward_kwargs
    assert kwargs.task == "arith" and kwargs.judge.kind == "llm_http" and kwargs.mapping == "linear"

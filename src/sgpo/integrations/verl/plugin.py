"""verl plugin: registers the ``sgpo`` advantage estimator (``algorithm.adv_estimator=sgpo``).

It also wraps two verl functions, for ``adv_estimator=sgpo`` only (every other estimator goes to
verl's own code unchanged):

* ``verl.utils.config.validate_config`` (what ``python -m verl.trainer.main_ppo`` calls on the
  driver before Ray starts): a configuration the estimator would refuse
  (``options_from_config``: ``filter_groups`` on ``acc``, ``use_kl_in_reward``, a method verl cannot
  run), or sgpo's reward function set to grade for another method than the estimator's, stops the
  run at start-up, not after the first generation;
* ``verl.trainer.ppo.v1.utils.compute_advantage_for_multi_trajectories`` (the v1 trainer's
  advantage step): verl gives only its own GRPO the session structure of multi-output agent
  loops (keys ``{uid}_{session}_{index}``); every other estimator sees each output as a group
  member. The wrapper does for ``sgpo`` what verl does for GRPO: group statistics over each
  session's final output, the advantage broadcast to the session's outputs. The module is
  patched when it is first imported (a post-import hook), so ``import verl`` stays as fast.

verl 0.9 loads every entry point of the ``verl.plugins`` group at the end of ``import verl``
(unless ``VERL_USE_EXTERNAL_PLUGINS=none``), and sgpo's ``pyproject.toml`` declares this module
there. So every process that imports verl -- the driver, the TaskRunner and every Ray worker --
registers the estimator as soon as ``sgpo`` is installed in its environment; nobody has to
import sgpo. Where sgpo is only on ``PYTHONPATH`` (no installed distribution, so no entry point),
``VERL_USE_EXTERNAL_MODULES=sgpo.integrations.verl.plugin`` does the same.

verl swallows exceptions raised by plugins (it logs them at debug level), so this module is
kept small, and registering twice (the entry point and ``VERL_USE_EXTERNAL_MODULES``) is a no-op.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import os
import sys
from typing import Any, Callable

import torch

from sgpo.errors import ConfigError
from sgpo.integrations.verl.estimator import METHOD_KEY, NAME, options_from_config, session_rows, sgpo_verl_advantages

logger = logging.getLogger("sgpo.verl")
if not logger.handlers:  # verl configures the root logger at WARNING; one line per batch is shown by default
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("(sgpo) %(message)s"))
    logger.addHandler(_handler)
    logger.propagate = False
logger.setLevel(os.environ.get("SGPO_VERL_LOGGING_LEVEL", "INFO").upper())

#: The statistics of the latest batch this process computed advantages for (see ``sgpo_verl_advantages``).
LAST_STATS: dict[str, float] = {}
#: Running totals over this process's batches: ``batches``, ``responses``, ``sgpo/judged_responses``,
#: ``sgpo/judge_failures``, ``sgpo/verl_extra_judged``, ``sgpo/verl_dropped_grades``.
TOTALS: dict[str, float] = {}


def compute_sgpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index=None,
    epsilon: float | None = None,
    norm_adv_by_std_in_grpo: bool | None = None,
    config: Any = None,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's estimator signature -> (advantages, returns), both [B, T] (returns = advantages, as GRPO).

    Args:
        token_level_rewards: [B, T] per-token rewards (the score on the last response token).
        response_mask: [B, T].
        index: [B] verl's ``uid`` array (the group ids).
        epsilon: overrides the std epsilon (verl passes none to registered estimators).
        norm_adv_by_std_in_grpo: overrides ``config.norm_adv_by_std_in_grpo``.
        config: verl's ``algorithm`` config (see ``options_from_config``).
    """
    if index is None:
        raise ValueError("algorithm.adv_estimator=sgpo needs the group ids: the batch has no 'uid' entry")
    options = options_from_config(config, norm_adv_by_std_in_grpo)
    if epsilon is not None:
        options["eps"] = float(epsilon)
    out = sgpo_verl_advantages(token_level_rewards, response_mask, index, **options)
    LAST_STATS.clear()
    LAST_STATS.update(out.stats)
    TOTALS["batches"] = TOTALS.get("batches", 0) + 1
    TOTALS["responses"] = TOTALS.get("responses", 0) + len(out.rewards)
    for key in ("sgpo/judged_responses", "sgpo/judge_failures", "sgpo/verl_extra_judged",
                "sgpo/verl_dropped_grades"):
        TOTALS[key] = TOTALS.get(key, 0) + out.stats.get(key, 0)
    logger.info("sgpo advantages: %s", ", ".join(f"{k}={v:.4g}" for k, v in out.stats.items()))
    advantages = out.advantages.to(token_level_rewards.dtype)
    return advantages, advantages


def multi_trajectory_advantages(original: Callable) -> Callable:
    """Wrap verl's ``compute_advantage_for_multi_trajectories`` so ``sgpo`` gets GRPO's session handling."""
    if getattr(original, "__sgpo_wrapped__", False):
        return original

    @functools.wraps(original)
    def wrapper(data, batch_keys, adv_estimator, gamma=1.0, lam=1.0, num_repeat=1, norm_adv_by_std_in_grpo=True,
                config=None):
        if adv_estimator != NAME:
            return original(data, batch_keys, adv_estimator, gamma=gamma, lam=lam, num_repeat=num_repeat,
                            norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo, config=config)
        from verl.trainer.ppo.ray_trainer import compute_advantage

        final, session = session_rows(batch_keys)  # [S], [B]
        final_data = compute_advantage(data.select_idxs(final), adv_estimator=adv_estimator, gamma=gamma, lam=lam,
                                       num_repeat=num_repeat, norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
                                       config=config)
        mask = data.batch["response_mask"]
        # A_s: the final output's advantage, read on its first response token (0 for an empty response), as verl's GRPO
        first = final_data.batch["response_mask"].argmax(dim=1)
        per_session = final_data.batch["advantages"][torch.arange(len(final)), first]  # [S]
        advantages = per_session[torch.tensor(session, dtype=torch.long)].unsqueeze(-1) * mask  # [B, T]
        data.batch["advantages"] = advantages
        data.batch["returns"] = advantages
        return data

    wrapper.__sgpo_wrapped__ = True
    return wrapper


def checked_validate_config(original: Callable) -> Callable:
    """Wrap verl's ``validate_config`` so a configuration the ``sgpo`` estimator refuses stops the run at start-up."""
    if getattr(original, "__sgpo_wrapped__", False):
        return original

    @functools.wraps(original)
    def wrapper(config, *args, **kwargs):
        algorithm = config.get("algorithm") if hasattr(config, "get") else None
        if algorithm is not None and algorithm.get("adv_estimator") == NAME:
            options = options_from_config(algorithm)  # raises ConfigError with one line
            check_reward_model(config)
            check_reward_method(config, options["method"])
        return original(config, *args, **kwargs)

    wrapper.__sgpo_wrapped__ = True
    return wrapper


def check_reward_model(config: Any) -> None:
    """Refuse a verl-hosted judge that verl 0.9.1's v1 trainer would not let sgpo's reward function read.

    With a colocated reward model (``reward.reward_model.enable=True``, ``enable_resource_pool=False``)
    the v1 trainer scores after generation through ``_compute_reward_colocate``, which sends the
    reward loop only prompts, responses and ``raw_prompt``: no ``data_source``, ground truth or
    ``extra_info``, so every custom reward function fails on its first row (``KeyError: 'data_source'``).
    """
    reward = config.get("reward") or {}
    model = reward.get("reward_model") or {}
    custom = (reward.get("custom_reward_function") or {}).get("path")
    use_v1 = (config.get("trainer") or {}).get("use_v1", True)
    if use_v1 and custom and model.get("enable", False) and not model.get("enable_resource_pool", False):
        raise ConfigError(
            "a verl-hosted judge needs reward.reward_model.enable_resource_pool=True (with its n_gpus_per_node and "
            "nnodes): verl 0.9.1's v1 trainer gives a colocated reward model's reward loop only prompts and "
            "responses, so sgpo's reward function would have no data_source, ground truth or problem text"
        )


def check_reward_method(config: Any, method: str) -> None:
    """Refuse sgpo's reward function grading for another method than the estimator runs.

    verl gives the reward function ``reward_kwargs``, not the ``algorithm`` section, so the method is
    named on both sides; were they to differ, the estimator would shape grades meant for another
    method (a judge's RTS read as ``random``'s draws, or ``grpo`` paying for judge calls it drops).
    """
    custom = (config.get("reward") or {}).get("custom_reward_function") or {}
    path = str(custom.get("path") or "").replace("\\", "/")
    if "sgpo.integrations.verl.reward" not in path and not path.endswith("sgpo/integrations/verl/reward.py"):
        return  # not sgpo's reward function: what it scores is its own business
    given = str((custom.get("reward_kwargs") or {}).get("method", "sgpo"))
    if given != method:
        raise ConfigError(
            f"{METHOD_KEY}={method} but sgpo's reward function grades for reward.custom_reward_function.reward_kwargs."
            f"method={given}; set +reward.custom_reward_function.reward_kwargs.method={method}"
        )


#: verl module -> (attribute, wrapper factory) patched once the module is imported.
PATCHES: dict[str, tuple[str, Callable[[Callable], Callable]]] = {
    "verl.utils.config": ("validate_config", checked_validate_config),
    "verl.trainer.ppo.v1.utils": ("compute_advantage_for_multi_trajectories", multi_trajectory_advantages),
}


def _patch(module) -> None:
    attribute, wrap = PATCHES[module.__name__]
    original = getattr(module, attribute, None)
    if original is None:
        logger.warning("verl's %s has no %s; sgpo's wrapper is not installed", module.__name__, attribute)
        return
    setattr(module, attribute, wrap(original))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Runs :func:`_patch` on a module of :data:`PATCHES` right after it executes, before anyone imports from it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in PATCHES:
            return None
        sys.meta_path.remove(self)  # find the real spec without finding ourselves
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


def install_patches() -> None:
    """Patch the modules of :data:`PATCHES` now if imported, else when they are (idempotent)."""
    for name in PATCHES:
        if name in sys.modules:
            _patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def register() -> None:
    """Register the estimator with verl's ``register_adv_est`` (idempotent)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    current = ADV_ESTIMATOR_REGISTRY.get(NAME)
    if current is compute_sgpo_advantage:
        return
    if current is not None:
        if getattr(current, "__module__", None) != __name__:
            logger.warning("an advantage estimator %r is already registered (%r); sgpo's is not registered", NAME, current)
            return
        del ADV_ESTIMATOR_REGISTRY[NAME]  # a stale copy of this module (a re-import under another name)
    register_adv_est(NAME)(compute_sgpo_advantage)


register()
install_patches()

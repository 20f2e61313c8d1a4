"""verl plugin: registers the ``sgpo`` advantage estimator (``algorithm.adv_estimator=sgpo``).

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

import logging
import os
import sys
from typing import Any

import torch

from sgpo.integrations.verl.estimator import NAME, options_from_config, sgpo_verl_advantages

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
        TOTALS[key] = TOTALS.get(key, 0) + out.stats[key]
    logger.info("sgpo advantages: %s", ", ".join(f"{k}={v:.4g}" for k, v in out.stats.items()))
    advantages = out.advantages.to(token_level_rewards.dtype)
    return advantages, advantages


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

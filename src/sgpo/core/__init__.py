"""The SGPO algorithm as pure tensor functions: no I/O, no models.

groups -> RTS -> graded rewards -> SGPO shaping / baselines -> advantages -> loss.
"""

from sgpo.core.advantages import SCALES, group_advantages
from sgpo.core.groups import GroupKinds, classify_groups
from sgpo.core.loss import AGGREGATIONS, PolicyLoss, aggregate, k3_kl, policy_loss
from sgpo.core.methods import JUDGED_METHODS, METHODS, MethodOutput, ShapingParams, needs_judge
from sgpo.core.rewards import MAX_GRADED_REWARD, REWARD_MAPPINGS, graded_reward
from sgpo.core.rts import rts_from_steps, rts_from_tokens
from sgpo.core.shaping import SCOPES, judge_mask, sgpo_rewards

__all__ = [
    "AGGREGATIONS", "GroupKinds", "JUDGED_METHODS", "MAX_GRADED_REWARD", "METHODS", "MethodOutput",
    "PolicyLoss", "REWARD_MAPPINGS", "SCALES", "SCOPES", "ShapingParams", "aggregate",
    "classify_groups", "graded_reward", "group_advantages", "judge_mask", "k3_kl", "needs_judge",
    "policy_loss", "rts_from_steps", "rts_from_tokens", "sgpo_rewards",
]

"""The SGPO algorithm as pure tensor functions: no I/O, no models.

groups -> RTS -> graded rewards -> SGPO shaping / baselines -> advantages -> loss.
"""

from sgpo.core.advantages import SCALES, group_advantages
from sgpo.core.groups import GroupKinds, classify_groups, is_correct
from sgpo.core.loss import AGGREGATIONS, PolicyLoss, aggregate, k3_kl, policy_loss
from sgpo.core.methods import GRADING_METHODS, JUDGED_METHODS, METHODS, MethodOutput, ShapingParams, known_rewards, needs_judge
from sgpo.core.rewards import MAX_GRADED_REWARD, REWARD_MAPPINGS, graded_reward
from sgpo.core.rts import rts_from_steps, rts_from_tokens
from sgpo.core.shaping import SCOPES, judge_mask, restrict_to_scope, sgpo_rewards

__all__ = [
    "AGGREGATIONS", "GRADING_METHODS", "GroupKinds", "JUDGED_METHODS", "MAX_GRADED_REWARD", "METHODS", "MethodOutput",
    "PolicyLoss", "REWARD_MAPPINGS", "SCALES", "SCOPES", "ShapingParams", "aggregate",
    "classify_groups", "graded_reward", "group_advantages", "is_correct", "judge_mask", "k3_kl", "known_rewards",
    "needs_judge", "policy_loss", "restrict_to_scope", "rts_from_steps", "rts_from_tokens", "sgpo_rewards",
]

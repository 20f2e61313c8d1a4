"""The SGPO algorithm as pure tensor functions: no I/O, no models.

groups -> RTS -> graded rewards -> SGPO shaping / baselines -> advantages -> loss.
Methods, scopes and reward mappings are chosen by name from their registries (``METHODS``,
``SCOPES``, ``REWARD_MAPPINGS``), each the one list of its kind.
"""

from sgpo.core.advantages import SCALES, group_advantages
from sgpo.core.groups import GroupKinds, classify_groups, is_correct
from sgpo.core.loss import AGGREGATIONS, PolicyLoss, aggregate, k3_kl, policy_loss
from sgpo.core.methods import METHODS, Method, MethodOutput, Shaped, ShapingParams, known_rewards, needs_judge, shape_graded
from sgpo.core.registry import Registry, UnknownName
from sgpo.core.rewards import MAX_GRADED_REWARD, REWARD_MAPPINGS, RewardMapping, graded_reward
from sgpo.core.rts import rts_from_steps, rts_from_tokens
from sgpo.core.shaping import SCOPES, judge_mask, restrict_to_scope

__all__ = [
    "AGGREGATIONS", "GroupKinds", "MAX_GRADED_REWARD", "METHODS", "Method", "MethodOutput",
    "PolicyLoss", "REWARD_MAPPINGS", "Registry", "RewardMapping", "SCALES", "SCOPES", "Shaped", "ShapingParams",
    "UnknownName",
    "aggregate", "classify_groups", "graded_reward", "group_advantages", "is_correct", "judge_mask", "k3_kl",
    "known_rewards", "needs_judge", "policy_loss", "restrict_to_scope", "rts_from_steps", "rts_from_tokens",
    "shape_graded",
]

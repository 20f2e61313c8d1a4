"""Step judges: where does a response first go wrong?"""

from sgpo.judges.base import ERROR, INVALID, OK, STATUSES, TIMEOUT, JudgeRequest, StepJudge, Verdict
from sgpo.judges.cached import CachedJudge
from sgpo.judges.noisy import NoisyJudge
from sgpo.judges.rule import ArithRuleJudge

__all__ = [
    "ERROR", "INVALID", "OK", "STATUSES", "TIMEOUT", "ArithRuleJudge", "CachedJudge", "JudgeRequest",
    "NoisyJudge", "StepJudge", "Verdict",
]

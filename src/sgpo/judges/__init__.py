"""Step judges: where does a response first go wrong?

The protocol and the light judges are imported eagerly; model-backed judges (LLM over HTTP or
in-process, PRM) and the config factory load on first attribute access, so ``import sgpo.judges``
never pulls in transformers or httpx.
"""

from importlib import import_module

from sgpo.judges.base import ERROR, INVALID, OK, STATUSES, TIMEOUT, JudgeRequest, StepJudge, Verdict
from sgpo.judges.cached import CachedJudge
from sgpo.judges.noisy import NoisyJudge

#: name -> module, for the lazily imported parts of the public API
_LAZY = {
    "ArithRuleJudge": "sgpo.tasks.arith",  # lives with the task whose problems it parses
    "ConstantJudge": "sgpo.judges.baselines",
    "JudgeConfig": "sgpo.judges.config",
    "build_judge": "sgpo.judges.config",
    "load_judge_config": "sgpo.judges.config",
    "LLMJudge": "sgpo.judges.llm",
    "OpenAIChatBackend": "sgpo.judges.llm_http",
    "TransformersChatBackend": "sgpo.judges.llm_local",
    "PRMJudge": "sgpo.judges.prm",
    "JudgeStats": "sgpo.judges.stats",
    "collect_stats": "sgpo.judges.stats",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgpo.judges' has no attribute {name!r}")


__all__ = [
    "ERROR", "INVALID", "OK", "STATUSES", "TIMEOUT", "CachedJudge", "JudgeRequest",
    "NoisyJudge", "StepJudge", "Verdict", *_LAZY,
]

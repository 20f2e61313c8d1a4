"""Stepwise Guided Policy Optimization (SGPO).

Data flows one way: task -> sampling -> verify -> judge -> grading -> core -> update.
The maths lives in :mod:`sgpo.core`; :mod:`sgpo.grading` is the one step every trainer calls.

The public surface, importable from ``sgpo`` (loaded on first use, so ``import sgpo`` stays light)::

    from sgpo import StepJudge, JudgeRequest, Verdict, build_judge     # judges
    from sgpo import GradingSettings, StepReading, grade, grading_stats  # the grading step
    from sgpo import Trainer, load_config                              # the native trainer
    from sgpo.integrations.trl import SGPOTrainer, SGPOConfig          # inside TRL (extra: trl)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "StepJudge": "sgpo.judges.base",
    "JudgeRequest": "sgpo.judges.base",
    "Verdict": "sgpo.judges.base",
    "build_judge": "sgpo.judges.config",
    "JudgeConfig": "sgpo.judges.config",
    "GradingSettings": "sgpo.grading",
    "StepReading": "sgpo.grading",
    "Graded": "sgpo.grading",
    "grade": "sgpo.grading",
    "grading_stats": "sgpo.grading",
    "Trainer": "sgpo.train.trainer",
    "load_config": "sgpo.train.config",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sgpo' has no attribute {name!r}")

"""Judge configuration and the factory that builds a judge from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from sgpo.judges.base import StepJudge
from sgpo.judges.cached import CachedJudge
from sgpo.judges.noisy import NoisyJudge

if TYPE_CHECKING:
    from sgpo.tasks.base import Task


class JudgeConfig(BaseModel):
    """Which step judge SGPO asks, and the wrappers around it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["rule"] = "rule"
    """``rule``: the task's exact rule judge (the arithmetic task has one)."""
    max_steps: int | None = Field(default=None, ge=1)
    """Merge a response's steps to at most this many before judging (None: no limit)."""
    noise_p: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability of replacing a verdict by a wrong one (NoisyJudge), to study judge errors."""
    noise_mode: Literal["shift", "random"] = "shift"
    """How a noisy verdict is wrong: first-error index shifted by one step, or drawn at random."""
    noise_seed: int = 0
    """Seed of the noise."""
    cache: bool = True
    """Remember verdicts keyed by (problem, steps, reference)."""
    cache_size: int | None = Field(default=100_000, ge=1)
    """Most verdicts kept in the cache (least recently used go first); None: unbounded."""


def build_judge(cfg: JudgeConfig, task: "Task | None" = None) -> StepJudge:
    """The judge ``cfg`` describes, wrapped in noise (innermost) then cache."""
    if cfg.kind == "rule":
        judge = task.rule_judge() if task is not None else None
        if judge is None:
            raise ValueError(f"judge.kind=rule needs a task with a rule judge; task {getattr(task, 'name', None)!r} has none")
    else:  # pragma: no cover - Literal keeps other kinds out
        raise ValueError(f"unknown judge kind {cfg.kind!r}")
    if cfg.noise_p > 0:
        judge = NoisyJudge(judge, cfg.noise_p, cfg.noise_mode, cfg.noise_seed)
    if cfg.cache:
        judge = CachedJudge(judge, cfg.cache_size)
    return judge

"""Statistics of held-out learning curves: what `sgpo compare` and benchmarks/learning.py report.

A curve is one run's held-out evaluations, step 0 (before the first update) included. Over seeds
a number is reported as its mean with a 95% percentile-bootstrap interval; numpy's seeded
generator makes the interval itself reproducible. With few seeds (3-5) a percentile bootstrap
is narrower than the true interval; it is a summary of the seeds run, not a guarantee.
"""

from __future__ import annotations

import numpy as np

#: Bootstrap resamples and the seed of their generator.
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def curve(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows of ``history`` that carry ``key``."""
    points = [(int(m["step"]), float(m[key])) for m in history if key in m]
    return [s for s, _ in points], [v for _, v in points]


def area(values: list[float]) -> float | None:
    """The area under a curve, as the mean of its evaluations (equal weight per evaluation)."""
    return float(np.mean(values)) if len(values) else None


def steps_to(steps: list[int], values: list[float], target: float) -> int | None:
    """First step whose value reaches ``target``; None if it never does."""
    return next((s for s, v in zip(steps, values) if v >= target), None)


def value_at(steps: list[int], values: list[float], step: int) -> float | None:
    """The evaluation at ``step``, or None if there is none."""
    return next((v for s, v in zip(steps, values) if s == step), None)


def bootstrap(values, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> dict | None:
    """Mean of ``values`` (None entries left out) with a percentile-bootstrap interval of the mean.

    Returns {"mean", "lo", "hi", "n"}; None if no value is given. One value gives lo = hi = mean:
    there is no spread to resample.
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "n": int(x.size)}


def band(curves: list[tuple[list[int], list[float]]], **kw) -> dict:
    """Mean curve over seeds with its bootstrap interval at every step all curves share."""
    curves = [c for c in curves if c[0]]
    if not curves:
        return {"steps": [], "mean": [], "lo": [], "hi": []}
    common = sorted(set(curves[0][0]).intersection(*(set(s) for s, _ in curves[1:])))
    out = {"steps": common, "mean": [], "lo": [], "hi": []}
    for step in common:
        b = bootstrap([value_at(s, v, step) for s, v in curves], **kw)
        for name in ("mean", "lo", "hi"):
            out[name].append(b[name])
    return out


def paired_gap(a: dict[str, float | None], b: dict[str, float | None], **kw) -> dict | None:
    """Mean of a - b over the seeds both have, with its bootstrap interval. The seeds are paired:
    the same seed gives every method the same warm-up and the same prompt order."""
    diffs = [a[s] - b[s] for s in a if s in b and a[s] is not None and b[s] is not None]
    return bootstrap(diffs, **kw)


def fmt_ci(b: dict | None, fmt: str = "{:.3f}") -> str:
    """``0.412 [0.380, 0.441]``; ``—`` for no value; the interval is left out for one seed."""
    if b is None:
        return "—"
    if b["n"] == 1:
        return fmt.format(b["mean"])
    return f"{fmt.format(b['mean'])} [{fmt.format(b['lo'])}, {fmt.format(b['hi'])}]"

"""Counters a judge keeps, and one place that gathers them through the wrappers.

Judges that talk to a model (LLM, PRM) own a :class:`JudgeStats`; wrappers (cache, noise) keep
their own counters and point at the judge they wrap through ``.inner``. :func:`collect_stats`
walks that chain, so the trainer and the CLI can log judge time, calls, failures and cache hits
without knowing how the judge was assembled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sgpo.judges.base import Verdict, wrapper_chain


@dataclass
class JudgeStats:
    """Running totals since the judge was built."""

    verdicts: int = 0
    """Verdicts returned (one per request that reached this judge)."""
    calls: int = 0
    """Model calls made: HTTP requests including retries, or generate/forward batches."""
    retries: int = 0
    """HTTP requests that were repeated after a 429, a 5xx or a connection error."""
    failures: Counter = field(default_factory=Counter)
    """Failed verdicts by status (``invalid``, ``error``, ``timeout``)."""
    seconds: float = 0.0
    """Wall time spent inside ``judge()``."""

    def record(self, verdicts: list[Verdict], seconds: float) -> None:
        self.verdicts += len(verdicts)
        self.failures.update(v.status for v in verdicts if not v.ok)
        self.seconds += seconds

    def as_dict(self) -> dict[str, float]:
        out = {"verdicts": self.verdicts, "calls": self.calls, "retries": self.retries,
               "failures": sum(self.failures.values()), "seconds": round(self.seconds, 4)}
        out.update({f"failures/{status}": n for status, n in sorted(self.failures.items())})
        return out


def collect_stats(judge: object) -> dict[str, float]:
    """Flat ``judge/...`` metrics for ``judge`` and everything it wraps.

    Keys: ``judge/verdicts``, ``judge/calls``, ``judge/retries``, ``judge/failures``,
    ``judge/failures/<status>``, ``judge/seconds`` (from the innermost judge that keeps
    :class:`JudgeStats`), ``judge/cache_hits``, ``judge/cache_misses`` (from a cache wrapper) and
    ``judge/corrupted`` (from a noise wrapper), ``judge/sampled_tokens`` and ``judge/completions`` (from a
    Monte-Carlo rollout judge). Absent counters are simply not reported.
    """
    out: dict[str, float] = {}
    for node in wrapper_chain(judge):
        stats = getattr(node, "stats", None)
        if isinstance(stats, JudgeStats):
            out.update({f"judge/{k}": v for k, v in stats.as_dict().items()})
        if hasattr(node, "hits") and hasattr(node, "misses"):
            out["judge/cache_hits"], out["judge/cache_misses"] = node.hits, node.misses
        if hasattr(node, "sampled_tokens"):  # a Monte-Carlo judge's price: tokens and completions it sampled
            out["judge/sampled_tokens"], out["judge/completions"] = node.sampled_tokens, node.completions
        if hasattr(node, "corrupted"):
            out["judge/corrupted"] = node.corrupted
    return out

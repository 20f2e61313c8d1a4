"""A wrapper that corrupts verdicts on purpose, to study how judge errors affect SGPO."""

from __future__ import annotations

import random
from dataclasses import replace

from sgpo.judges.base import JudgeRequest, StepJudge, Verdict

NOISE_MODES = ("shift", "random")


class NoisyJudge:
    """With probability ``p`` replace an ``ok`` verdict by a wrong one.

    ``shift`` moves the first-error index one step earlier or later (-1, "no error", counts as the
    position after the last step); ``random`` draws any other index in {-1, 0, ..., K-1}.
    Failed verdicts pass through untouched. Seeded: the same calls give the same corruptions, also
    across a resume (``state_dict``).
    """

    def __init__(self, inner: StepJudge, p: float, mode: str = "shift", seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"noise probability p must be in [0, 1], got {p}")
        if mode not in NOISE_MODES:
            raise ValueError(f"unknown noise mode {mode!r}; choose one of: {', '.join(NOISE_MODES)}")
        self.inner, self.p, self.mode = inner, p, mode
        self.rng = random.Random(seed)
        self.corrupted = 0

    def _wrong_index(self, v: Verdict) -> int:
        K = v.n_steps
        # Positions 0..K-1 are steps, K stands for "no error" (-1).
        pos = K if v.first_error < 0 else v.first_error
        if self.mode == "random":
            new = self.rng.choice([q for q in range(K + 1) if q != pos])
        else:
            step = self.rng.choice((-1, 1))
            new = pos + step if 0 <= pos + step <= K else pos - step
        return -1 if new == K else new

    def state_dict(self) -> dict:
        """The noise's RNG and count: a resumed run draws the corruptions an uninterrupted one would."""
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "corrupted": self.corrupted}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.corrupted = state["corrupted"]

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        out = []
        for v in self.inner.judge(requests):
            if v.ok and v.n_steps > 0 and self.rng.random() < self.p:
                v = replace(v, first_error=self._wrong_index(v))
                self.corrupted += 1
            out.append(v)
        return out

"""Trivial judges that ignore the content: the floor any real judge must clear.

``first`` always blames step 0, ``last`` always the last step, ``none`` never finds an error.
Each scores 0 on one half of ProcessBench (erroneous or correct rows), hence F1 = 0.
"""

from __future__ import annotations

from sgpo.judges.base import INVALID, JudgeRequest, Verdict


class ConstantJudge:
    """Answers the same position for every request: ``first``, ``last`` or ``none``."""

    def __init__(self, which: str):
        if which not in BASELINES:
            raise ValueError(f"unknown baseline {which!r}; choose one of: {', '.join(BASELINES)}")
        self.which = which

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        out = []
        for r in requests:
            K = len(r.steps)
            if K == 0:
                out.append(Verdict.failed(0, INVALID, raw="no steps"))
            else:
                out.append(Verdict({"first": 0, "last": K - 1, "none": -1}[self.which], K, raw=self.which))
        return out


BASELINES = ("first", "last", "none")

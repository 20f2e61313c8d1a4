"""A judge that is down is said out loud (the failure rule, docs/metrics.md, keeps the run going; this keeps it honest).

A failed verdict leaves its response at advantage 0, so a run whose judge fails every call trains
as plain GRPO while looking like SGPO. Each step's failure share (``sgpo/judge_failures`` /
``sgpo/judged_responses``) is checked right after grading: at or above
``judge.warn_failure_frac`` the console says so (when a streak of such steps starts and when it
ends) and report.md lists those steps; at or above ``judge.max_failure_frac`` the run stops
before that step's update, so its last checkpoint is the last state trained with a working judge.
The native trainer and TRL's ``SGPOTrainer`` both watch their steps with it (TRL on the counts
gathered over processes, so every process stops at the same step).
"""

from __future__ import annotations

from sgpo.errors import RunFailed


def failure_share(judged: float, failed: float) -> float | None:
    """Failed verdicts per judged response; None for a step that judged nothing."""
    return failed / judged if judged else None


class JudgeDown(RunFailed):
    """A step's judge failed on at least ``judge.max_failure_frac`` of the responses it judged."""


class JudgeWatch:
    def __init__(self, warn_frac: float, max_frac: float | None, resume_hint: str, log=print):
        """``resume_hint``: how to go on after the judge is fixed (e.g. ``sgpo train --resume DIR``)."""
        self.warn_frac, self.max_frac, self.resume_hint, self.log = warn_frac, max_frac, resume_hint, log
        self.streak = 0  # consecutive steps at or above warn_frac

    def check(self, step: int, judged: int, failed: int) -> None:
        """One step's verdicts: ``judged`` responses sent to the judge, ``failed`` of them not usable."""
        share = failure_share(judged, failed)
        if share is None:
            return
        said = f"step {step}: the judge failed {failed} of {judged} verdicts ({share:.0%})"
        if self.max_frac is not None and share >= self.max_frac:
            raise JudgeDown(f"{said}, at or above judge.max_failure_frac={self.max_frac}; stopped before this step's "
                             f"update (the last checkpoint is as it was); fix the judge, then {self.resume_hint}")
        if share >= self.warn_frac:
            if self.streak == 0:
                self.log(f"WARNING: {said}; those responses get no SGPO signal (plain GRPO for them). "
                         f"Warned again when it recovers (judge.warn_failure_frac={self.warn_frac})")
            self.streak += 1
        elif self.streak:
            self.log(f"judge recovered at step {step} ({share:.0%} failed) after {self.streak} step(s) at or above "
                     f"{self.warn_frac:.0%} failed")
            self.streak = 0


"""How a training run stops early without losing what it had: non-finite updates, and Ctrl-C.

No non-finite loss or gradient reaches the weights.

One NaN in a gradient makes every weight NaN after the optimizer step, and the run then trains
garbage to the end with exit 0. Every update of the native trainer, the supervised warm-up and
``sgpo train-judge`` therefore checks its loss and its gradient norm first: if either is NaN or
infinite the gradients are dropped, and neither the optimizer nor the learning-rate schedule
steps, so weights, optimizer state and schedule stay exactly as they were.

A skipped step is counted (the trainer logs the running total as ``train/skipped_steps``), and
after ``max_in_row`` skipped steps in a row the run stops with :class:`TrainingDiverged`, whose
message names the step; the command line turns it into one line and exit code 1. The trainer
checkpoints nothing after the failing step, so the last good checkpoint stays as it was.

Ctrl-C (SIGINT) ends a run with :func:`interrupted`'s one line: checkpoints are written to a
temporary directory and renamed into place, so the last complete one is intact whenever the
interrupt comes, and ``sgpo train --resume`` continues from it exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from sgpo.errors import RunInterrupted, TrainingDiverged
from sgpo.train.checkpoint import latest_checkpoint


class UpdateGuard:
    """Counts skipped steps and stops a run whose updates stay non-finite.

    ``what`` names the loop in the message (``RL``, ``warm-up``, ``judge training``).
    """

    def __init__(self, max_in_row: int = 3, what: str = "training"):
        self.max_in_row, self.what = max_in_row, what
        self.skipped_total = 0
        self.in_row = 0

    @staticmethod
    def finite(loss: float, grad_norm: torch.Tensor | float) -> bool:
        return math.isfinite(loss) and math.isfinite(float(grad_norm))

    def end_step(self, step: int, skipped: bool) -> None:
        """Record whether ``step`` (1-based) was skipped; raise once too many were in a row."""
        self.record(skipped)
        self.check(step)

    def record(self, skipped: bool) -> None:
        self.skipped_total += skipped
        self.in_row = self.in_row + 1 if skipped else 0

    def check(self, step: int) -> None:
        """Raise :class:`TrainingDiverged` if the steps up to ``step`` ended ``max_in_row`` skips in a row."""
        if self.in_row >= self.max_in_row:
            first = step - self.in_row + 1
            raise TrainingDiverged(
                f"{self.what} stopped at step {step}: non-finite loss or gradient in {self.in_row} steps in a row "
                f"({first}..{step}); none reached the weights, which are those after step {first - 1}")

    def state_dict(self) -> dict:
        return {"skipped_total": self.skipped_total, "in_row": self.in_row}

    def load_state_dict(self, state: dict) -> None:
        self.skipped_total, self.in_row = int(state["skipped_total"]), int(state["in_row"])


def guarded_step(params: list, optimizer, scheduler, loss_value: float, grad_clip: float) -> tuple[bool, float]:
    """Clip the gradients of ``params`` and step ``optimizer`` and ``scheduler``, unless the loss or
    the gradient norm is not finite: then drop the gradients and step nothing.

    Returns (applied, gradient norm before clipping)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    applied = UpdateGuard.finite(loss_value, grad_norm)
    if applied:
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return applied, float(grad_norm)


def interrupted(run_dir: Path, step: int) -> RunInterrupted:
    """What Ctrl-C at ``step`` tells the user: where the run stopped and how to continue it."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        return RunInterrupted(f"interrupted at step {step}, before the first checkpoint: nothing to resume")
    return RunInterrupted(f"interrupted at step {step}; resume with `sgpo train --resume {run_dir}` (from {ckpt.name})")

"""Checkpoints that let a run continue exactly: weights, optimizer, scheduler, RNG states, data position."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from sgpo.models import save_policy

_DONE = "trainer_state.pt"


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, optimizer, scheduler, extra: dict) -> Path:
    """Write checkpoints/step_N atomically (a temp dir renamed into place) and return it."""
    final = run_dir / "checkpoints" / f"step_{step}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_policy(model, tokenizer, tmp)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        },
        **extra,
    }
    torch.save(state, tmp / _DONE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (a crash mid-save leaves only a .tmp dir, which is ignored)."""
    done = [p.parent for p in (run_dir / "checkpoints").glob(f"step_*/{_DONE}") if not p.parent.name.endswith(".tmp")]
    return max(done, key=lambda p: int(p.name.split("_")[1]), default=None)


def load_trainer_state(ckpt: Path) -> dict:
    return torch.load(ckpt / _DONE, weights_only=False)


def restore_rng(state: dict) -> None:
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])

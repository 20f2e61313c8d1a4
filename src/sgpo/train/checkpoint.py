"""Checkpoints that let a run continue exactly: weights, optimizer, scheduler, RNG states, data position.

With LoRA (``model.lora_r > 0``) a checkpoint holds only the adapters (peft's files): the frozen
base is rebuilt from the config on resume, exactly as the run first built it, and the adapters
are loaded into it bit for bit.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from sgpo.models import LORA_CONFIG, LORA_WEIGHTS, is_lora, load_policy, save_policy

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


def load_policy_weights(policy, ckpt: Path) -> None:
    """Load a checkpoint's weights into ``policy`` in place: the adapters of a LoRA policy, else all weights."""
    has_adapters = (ckpt / LORA_WEIGHTS).is_file()
    if is_lora(policy):
        if not has_adapters:
            raise FileNotFoundError(f"{ckpt} has no LoRA adapters ({LORA_WEIGHTS}) but the run has model.lora_r > 0")
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        result = set_peft_model_state_dict(policy, load_file(ckpt / LORA_WEIGHTS))
        if result.unexpected_keys:
            raise ValueError(f"{ckpt}: adapter weights that this run's LoRA policy does not have: {result.unexpected_keys[:5]}")
        return
    if has_adapters and (ckpt / LORA_CONFIG).is_file():
        raise FileNotFoundError(f"{ckpt} holds LoRA adapters but the run has model.lora_r=0")
    model, _ = load_policy(ckpt)
    policy.load_state_dict(model.state_dict())


def load_trainer_state(ckpt: Path) -> dict:
    return torch.load(ckpt / _DONE, weights_only=False)


def restore_rng(state: dict) -> None:
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])

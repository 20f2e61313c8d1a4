"""Checkpoints that let a run continue exactly: weights, optimizer, scheduler, RNG states, data position.

The trainer state is plain data, never pickled code: ``trainer_state.json`` (step, data position,
scheduler, Python and NumPy RNG states) beside ``trainer_tensors.pt`` (optimizer state, torch RNG
states), which is read with ``torch.load(weights_only=True)``. Opening someone else's run
directory therefore cannot run their code; a tensors file that holds anything but tensors and
plain containers is refused. The JSON file is written last and marks the checkpoint complete.

With LoRA (``model.lora_r > 0``) a checkpoint holds only the adapters (peft's files): the frozen
base is rebuilt from the config on resume, exactly as the run first built it, and the adapters
are loaded into it bit for bit.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from sgpo.errors import DataError, MissingInputError
from sgpo.models.policies import LORA_CONFIG, LORA_WEIGHTS, is_lora, load_policy, save_policy

_DONE = "trainer_state.json"
_TENSORS = "trainer_tensors.pt"
FORMAT = 2  # 1 was a pickled trainer_state.pt


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, optimizer, scheduler, extra: dict) -> Path:
    """Write checkpoints/step_N atomically (a temp dir renamed into place) and return it."""
    final = run_dir / "checkpoints" / f"step_{step}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_policy(model, tokenizer, tmp)
    tensors = {
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch.save(tensors, tmp / _TENSORS)
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "format": FORMAT,
        "step": step,
        "scheduler": scheduler.state_dict(),
        "python_rng": random.getstate(),
        "numpy_rng": [kind, keys.tolist(), pos, has_gauss, gauss],
        **extra,
    }
    (tmp / _DONE).write_text(json.dumps(state))
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
            raise MissingInputError(f"{ckpt} has no LoRA adapters ({LORA_WEIGHTS}) but the run has model.lora_r > 0")
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        result = set_peft_model_state_dict(policy, load_file(ckpt / LORA_WEIGHTS))
        if result.unexpected_keys:
            raise ValueError(f"{ckpt}: adapter weights that this run's LoRA policy does not have: {result.unexpected_keys[:5]}")
        return
    if has_adapters and (ckpt / LORA_CONFIG).is_file():
        raise MissingInputError(f"{ckpt} holds LoRA adapters but the run has model.lora_r=0")
    model, _ = load_policy(ckpt)
    policy.load_state_dict(model.state_dict())


def load_trainer_state(ckpt: Path) -> dict:
    """The trainer state of checkpoint ``ckpt``: the JSON fields plus ``optimizer``, ``torch_rng``, ``cuda_rng``."""
    try:
        state = json.loads((ckpt / _DONE).read_text())
        if state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
        tensors = torch.load(ckpt / _TENSORS, weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{ckpt / _TENSORS}: not a trainer state this sgpo wrote, refused: it holds objects other "
                        "than tensors and plain containers (loading it could run code)") from None
    except (OSError, ValueError, RuntimeError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DataError(f"{ckpt}: not a trainer state this sgpo wrote, refused ({type(e).__name__}: {first_line})") from None
    return {**state, **tensors}


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy_rng"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))

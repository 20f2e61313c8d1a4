"""Seconds per RL step and tokens/s of the native trainer.

    python benchmarks/rl_step.py [key=value ...]     # defaults: configs/arith.yaml, 30 steps

Runs `sgpo train` on the given config (the warm-up is cached and not timed), then prints the
median of each timing metric over the steps after the first (which pays one-off start-up costs).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from sgpo.train.compare import default_config_path
from sgpo.train.config import load_config
from sgpo.train.trainer import Trainer

KEYS = ("time/step", "time/generate", "time/judge", "time/train", "tokens_per_s", "response_tokens/mean")


def main(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(default_config_path(), ["train.steps=30", "train.eval_every=0", "train.progress=false", *overrides])
        trainer = Trainer(cfg, Path(tmp) / "run", log=lambda *a: None)
        t0 = time.perf_counter()
        history = trainer.train()
        wall = time.perf_counter() - t0
    # RL steps 2.. (step 1 pays start-up costs; the step-0 row is an evaluation, not a step).
    steady = [m for m in history if "time/step" in m and m["step"] >= 2] or [m for m in history if "time/step" in m]
    print(f"device={trainer.device} threads={torch.get_num_threads()} steps={len([m for m in history if 'time/step' in m])} method={cfg.algorithm.method} "
          f"batch={cfg.rollout.prompts_per_step}x{cfg.rollout.group_size}")
    for key in KEYS:
        print(f"{key:<22} {statistics.median(m[key] for m in steady):10.3f}")
    print(f"{'wall (incl. step-0 and final eval)':<22} {wall:10.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])

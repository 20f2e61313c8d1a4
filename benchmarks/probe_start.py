"""Where RL starts on a config: the warmed-up policy's greedy and sampled held-out accuracy, and
the share of all-negative groups in one training batch. No RL step is taken.

    python benchmarks/probe_start.py [--config FILE] [key=value ...]

Used to tune the default (docs/algorithm.md, "Tuning the default"): the warm-up is cached, so a
probe of a known warm-up costs one evaluation and one batch of rollouts. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

from sgpo.core import classify_groups
from sgpo.train.compare import default_config_path
from sgpo.train.config import load_config
from sgpo.train.trainer import Trainer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--out", default="runs/probe", help="scratch run directory")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(args.config or default_config_path(), [*args.overrides, "train.progress=false"])
    t0 = time.perf_counter()
    trainer = Trainer(cfg, args.out, log=lambda *a: None)
    t_warm = time.perf_counter() - t0
    result = {"overrides": args.overrides, **trainer.evaluate()}
    batch = trainer._next_batch(cfg.rollout.prompts_per_step)
    kinds = classify_groups(batch.outcomes)
    lengths = batch.rollout.response_mask.sum(dim=1).float()
    result.update({
        "train_sampled": batch.outcomes.float().mean().item(),
        "all_negative_frac": kinds.all_negative.float().mean().item(),
        "all_positive_frac": kinds.all_positive.float().mean().item(),
        "truncated_frac": (lengths >= cfg.rollout.max_new_tokens).float().mean().item(),
        "response_tokens": lengths.mean().item(),
        "seconds_setup": round(t_warm, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    })
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

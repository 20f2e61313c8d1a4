"""What a run directory holds, and whether a run may start in it or resume from it."""

from __future__ import annotations

from pathlib import Path

#: What a run writes into its directory; a fresh run refuses a directory holding any of them.
RUN_FILES = ("config.yaml", "metrics.jsonl", "samples.jsonl", "report.md", "checkpoints", "plots", "tensorboard")


#: Config keys a resumed run may change (in its config.yaml): they schedule the rest of the run but
#: do not change what the checkpoint computed, e.g. raising train.steps to train longer.
SCHEDULE_KEYS = frozenset({"train.steps", "train.eval_every", "train.save_every", "train.log_samples",
                           "train.progress", "train.tensorboard"})


def run_files(run_dir: Path) -> list[str]:
    """The names of ``RUN_FILES`` present in ``run_dir``."""
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += config_diff(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out

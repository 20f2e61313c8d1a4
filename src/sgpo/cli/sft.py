"""`sgpo sft [--config FILE] [--out DIR] [key=value ...]`: the supervised warm-up alone.

The warmed-up policy goes to the warm-up cache (``warmup.cache_dir``), where ``train``,
``compare`` and ``rollout`` find it; ``--out`` also saves a copy.
"""

from __future__ import annotations

from sgpo.cli import add_overwrite
from sgpo.errors import ConfigError
from sgpo.files.outputs import atomic_path, check_out
from sgpo.train.config import load_config


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML config (the warmup, task and model sections are used)")
    parser.add_argument("--out", help="also save the warmed-up policy to this directory")
    add_overwrite(parser)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. warmup.steps=400")


def run(args) -> int:
    from sgpo.models.policies import save_policy  # torch and transformers: not for `--help`
    from sgpo.train.runtime import pick_device
    from sgpo.train.sft import initial_policy

    cfg = load_config(args.config, args.overrides)
    if cfg.warmup.steps == 0:
        raise ConfigError("warmup.steps is 0: nothing to train (set e.g. warmup.steps=400)")
    if args.out:
        check_out(args.out, "dir", args.overwrite)
    model, tokenizer = initial_policy(cfg, pick_device(cfg), lora=False)
    if args.out:
        with atomic_path(args.out) as tmp:
            save_policy(model, tokenizer, tmp)
        print(f"saved warmed-up policy to {args.out}")
    return 0

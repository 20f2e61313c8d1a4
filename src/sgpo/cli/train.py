"""`sgpo train --config FILE [key=value ...]` and `sgpo train --resume RUN_DIR`."""

from __future__ import annotations

from sgpo.errors import ConfigError
from sgpo.train.config import load_config


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML config file (defaults apply to anything it leaves out)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in train.out_dir")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algorithm.method=grpo rollout.group_size=8")


def run(args) -> int:
    from sgpo.train.trainer import resume, train  # torch and transformers: not for `--help`

    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its saved config; drop --config and overrides")
        history = resume(args.resume)
    else:
        cfg = load_config(args.config, args.overrides)
        history = train(cfg, overwrite=args.overwrite)
    if history:
        last = history[-1]
        shown = {k: round(v, 4) for k, v in last.items() if k in ("step", "accuracy/train", "eval/accuracy", "groups/all_negative_frac")}
        print(f"done: {shown}")
    return 0

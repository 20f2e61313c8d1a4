"""`sgpo compare [--config FILE] [--methods grpo sgpo ...] [--seeds 1 2 3] [--out DIR [--overwrite]] [key=value ...]`.

Runs every method from one warm-up (:func:`sgpo.train.compare.compare`) and prints the headline
table; the report, plots and summary.json are written under ``--out``.
"""

from __future__ import annotations

from sgpo.cli import add_overwrite, float_in, seed_int
from sgpo.train.config import load_config


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML config (default: the built-in arithmetic default, configs/arith.yaml)")
    parser.add_argument("--methods", nargs="+", default=["grpo", "sgpo"], help="methods to compare (default: grpo sgpo)")
    parser.add_argument("--seeds", nargs="+", type=seed_int, default=None, help="training seeds (default: train.seed)")
    parser.add_argument("--out", default="runs/compare", help="output directory (default: runs/compare)")
    add_overwrite(parser)
    parser.add_argument(
        "--metric", choices=["sampled", "greedy"], default="sampled",
        help="headline held-out metric: sampled (eval/avg@k, default) or greedy (eval/accuracy)",
    )
    parser.add_argument(
        "--target", type=float_in(0.0, 1.0), default=None,
        help="headline accuracy for 'steps to target' (default: the mean start value plus half the best mean gain)",
    )
    parser.add_argument("overrides", nargs="*", help="dotted overrides applied to every run, e.g. train.steps=50")


def run(args) -> int:
    from sgpo.evaluation import curves  # torch and transformers: not for `--help`
    from sgpo.train.compare import compare, default_config_path

    cfg = load_config(args.config or default_config_path(), args.overrides)
    seeds = args.seeds or [cfg.train.seed]
    summary = compare(cfg, args.methods, seeds, args.out, args.target, args.metric, overwrite=args.overwrite)
    kind = "sampled" if args.metric == "sampled" else "accuracy"
    print(f"\n{'method':<8} {'final ' + summary['metric']:>26} {'area':>26} {'steps to target':>20}")
    for method, agg in summary["over_seeds"].items():
        print(f"{method:<8} {curves.fmt_ci(agg[f'final_eval_{kind}']):>26} {curves.fmt_ci(agg[f'area_eval_{kind}']):>26} "
              f"{curves.fmt_ci(agg['steps_to_target'], '{:.0f}'):>20}")
    return 0

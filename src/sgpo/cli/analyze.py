"""`sgpo analyze ROLLOUTS [--out DIR] [--scope ...] [--mapping ...]`: what GRPO and SGPO would learn from a rollouts file."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from sgpo.cli import add_overwrite, finite_float
from sgpo.errors import ConfigError, DataError
from sgpo.files.outputs import check_out
from sgpo.train.config import AlgorithmConfig


def add_arguments(parser) -> None:
    d = AlgorithmConfig()
    parser.add_argument("rollouts", help="rollouts JSONL written by `sgpo rollout`")
    parser.add_argument("--out", help="write report.md, summary.json and plots/ into this directory")
    add_overwrite(parser)
    parser.add_argument("--scope", default=d.scope, help=f"SGPO scope, a name in sgpo.core.SCOPES (default {d.scope})")
    parser.add_argument("--mapping", default=d.mapping, help=f"RTS -> reward, a name in sgpo.core.REWARD_MAPPINGS (default {d.mapping})")
    parser.add_argument("--beta", type=finite_float, default=d.beta, help=f"logistic steepness (default {d.beta})")
    parser.add_argument("--gamma", type=finite_float, default=d.gamma, help=f"logistic midpoint (default {d.gamma})")
    parser.add_argument("--linear-scale", type=finite_float, default=d.linear_scale, help=f"linear slope (default {d.linear_scale})")
    parser.add_argument("--scale", choices=["group", "batch", "none"], default=d.scale, help=f"advantage scale (default {d.scale})")


def run(args) -> int:
    from sgpo.evaluation.analyze import (  # torch: not for `--help`
        REPORT_FILES,
        analyze,
        summary_lines,
        table,
        text_table,
        write_report,
    )
    from sgpo.rollouts.file import read_rollouts

    try:
        alg = AlgorithmConfig(scope=args.scope, mapping=args.mapping, beta=args.beta, gamma=args.gamma,
                              linear_scale=args.linear_scale, scale=args.scale)
    except ValidationError as e:
        raise ConfigError("; ".join(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors())) from None
    if args.out:
        check_out(args.out, "dir", args.overwrite, names=REPORT_FILES)
    rf = read_rollouts(args.rollouts)
    if not rf.groups:
        raise DataError(f"{rf.path} has no complete group")
    a = analyze(rf, alg.shaping_params())
    print(f"rollouts: {rf.path}")
    print(text_table(table(a)))
    for line in summary_lines(a):
        print(line)
    if args.out:
        print(f"report: {write_report(a, Path(args.out))}")
    return 0

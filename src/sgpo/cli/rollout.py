"""`sgpo rollout --config FILE --out rollouts.jsonl [--judge] [--split train] [--problems N] [key=value ...]`.

Samples, verifies (and with ``--judge`` judges) responses into a rollouts file for offline training
(:mod:`sgpo.train.offline_rollouts`; the format: :mod:`sgpo.rollouts.file`).
"""

from __future__ import annotations

from sgpo.cli import int_in
from sgpo.train.config import MAX_PROBLEMS, MAX_PROMPTS, load_config


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML config (task, model, warmup, rollout, judge sections; defaults otherwise)")
    parser.add_argument("--out", required=True, help="rollouts JSONL to write")
    parser.add_argument("--judge", action="store_true", help="judge the responses in algorithm.scope with the configured judge")
    parser.add_argument("--split", default="train", choices=["train", "validation", "test"], help="problems to roll out (default train)")
    parser.add_argument("--problems", type=int_in(1, MAX_PROBLEMS), default=None,
                        help="number of problems (default: task.n_train for train, task.n_eval otherwise)")
    parser.add_argument("--batch-prompts", type=int_in(1, MAX_PROMPTS), default=None, help="problems per generate call (default rollout.prompts_per_step)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rollout.group_size=8 model.path=models/smollm2")


def run(args) -> int:
    from sgpo.train.offline_rollouts import roll_out  # torch and transformers: not for `--help`

    cfg = load_config(args.config, args.overrides)
    t = roll_out(cfg, args.out, args.split, args.problems, with_judge=args.judge, batch_prompts=args.batch_prompts,
                 overwrite=args.overwrite)
    G = cfg.rollout.group_size
    n_groups = t["responses"] // G
    print(
        f"wrote {n_groups} groups x {G} responses to {args.out} in {t['seconds']:.1f}s "
        f"({t['tokens'] / t['seconds']:.0f} tokens/s): accuracy {t['correct'] / t['responses']:.3f}, "
        f"all-negative {t['all_negative'] / n_groups:.3f}, all-positive {t['all_positive'] / n_groups:.3f}"
    )
    if args.judge:
        print(f"judged {t['judged']} responses ({cfg.algorithm.scope}), {t['failed']} failed verdicts; "
              + ", ".join(f"{k}={v}" for k, v in t["judge_stats"].items()))
    return 0

"""`sgpo data`: write datasets.

    sgpo data verl --task arith --train 4096 --val 256 --out data/arith      # verl RL parquet
    sgpo data verl --task math --train-file gsm8k_train.jsonl --out data/gsm8k
    sgpo data wordproblems [--check]     # rewrite (or check) the built-in word problems

``verl``: an sgpo task's problems in the layout verl reads and sgpo's verl reward function scores
(:mod:`sgpo.integrations.verl.data`). ``wordproblems``: the shipped word-problem files
(:mod:`sgpo.tasks.wordproblems`); ``--check`` exits 1 if they differ from the generator.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sgpo.cli import add_overwrite, int_in, seed_int
from sgpo.files.outputs import atomic_path, check_out
from sgpo.files.rows import write_jsonl
from sgpo.integrations.verl.data import rows, write
from sgpo.tasks import TASKS, make_task, wordproblems
from sgpo.tasks.arith import ArithSpec
from sgpo.train.config import MAX_PROBLEMS


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    verl = sub.add_parser("verl", help="an sgpo task's problems as verl RL datasets (train.parquet, val.parquet)")
    verl.add_argument("--task", choices=TASKS, required=True)
    verl.add_argument("--out", required=True, help="folder for train.parquet and val.parquet")
    add_overwrite(verl)
    verl.add_argument("--train", type=int_in(1, MAX_PROBLEMS), default=4096, help="training problems (arith: generated; math: at most)")
    verl.add_argument("--val", type=int_in(1, MAX_PROBLEMS), default=256, help="validation problems")
    verl.add_argument("--seed", type=seed_int, default=0, help="arith: the generator's seed")
    verl.add_argument("--n-ops", type=int_in(1, 1000), default=4, help="arith: operations per problem")
    verl.add_argument("--train-file", action="append", default=[], help="math: problem files (JSONL/JSON/Parquet)")
    verl.add_argument("--eval-file", action="append", default=[], help="math: held-out problem files")
    verl.add_argument("--system-prompt", default=None, help="system message (math: the task's own by default)")
    wp = sub.add_parser("wordproblems", help="rewrite (or --check) the built-in word-problem files")
    wp.add_argument("--seed", type=seed_int, default=wordproblems.SEED)
    wp.add_argument("--out", default=None, help="directory to write to (default: the package's data/, rewritten in place)")
    add_overwrite(wp)
    wp.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")


def run(args) -> int:
    return _verl(args) if args.action == "verl" else _wordproblems(args)


#: What ``data verl`` writes into --out: (split, file name).
VERL_FILES = (("train", "train.parquet"), ("validation", "val.parquet"))


def _verl(args) -> int:
    out = check_out(args.out, "dir", args.overwrite, names=[name for _, name in VERL_FILES])
    task = make_task(args.task, arith=ArithSpec(n_ops=args.n_ops), seed=args.seed, train_files=args.train_file,
                     eval_files=args.eval_file)
    system = args.system_prompt if args.system_prompt is not None else task.system_prompt
    for (split, name), n in zip(VERL_FILES, (args.train, args.val)):
        problems = task.problems(split, n)
        with atomic_path(out / name) as tmp:
            write(tmp, rows(problems, args.task, split, system))
        print(f"{out / name}: {len(problems)} problems")
    return 0


def _wordproblems(args) -> int:
    if args.out and not args.check:  # rewriting the package's own files (no --out) is what the command is for
        check_out(args.out, "dir", args.overwrite, names=[wordproblems.FILE.format(split=s) for s in wordproblems.SPLIT_SIZES])
    out_dir = Path(args.out) if args.out else wordproblems.builtin_file("train").parent
    for split, table in wordproblems.generate(args.seed).items():
        path = out_dir / wordproblems.FILE.format(split=split)
        if args.check:
            shipped = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else None
            if shipped != table:
                print(f"{path} differs from the generator (seed {args.seed})", file=sys.stderr)
                return 1
        else:
            write_jsonl(path, table)
            print(f"{path}: {len(table)} problems")
    return 0

"""Write an sgpo task's problems as verl RL datasets (parquet), in the layout sgpo's reward function reads.

    python -m sgpo.integrations.verl.data --task arith --train 4096 --val 256 --out data/arith
    python -m sgpo.integrations.verl.data --task math --train-file gsm8k_train.jsonl --out data/gsm8k

Each row: ``data_source`` (``sgpo/arith`` or ``sgpo/math``: picks the verifier), ``prompt`` (chat
messages; verl applies the policy's chat template), ``ability``, ``reward_model`` (``style: rule``,
``ground_truth``: the final answer) and ``extra_info`` (``question``: the problem text the step
judge sees, ``reference``: the reference solution, ``split``, ``index``, ``id``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sgpo.tasks.base import Problem


def rows(problems: list[Problem], task: str, split: str, system_prompt: str | None = None) -> list[dict]:
    """verl dataset rows for ``problems`` of ``task`` (``arith`` or ``math``)."""
    messages = lambda q: ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [  # noqa: E731
        {"role": "user", "content": q}]
    return [
        {
            "data_source": f"sgpo/{task}",
            "prompt": messages(p.question),
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": p.answer},
            "extra_info": {"split": split, "index": i, "id": p.id, "question": p.question,
                           "reference": p.reference or ""},
        }
        for i, p in enumerate(problems)
    ]


def write(path: str | Path, table: list[dict]) -> Path:
    """Write ``table`` as parquet (through ``datasets``, an sgpo dependency)."""
    from datasets import Dataset

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(table).to_parquet(str(path))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sgpo.integrations.verl.data", description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=("arith", "math"), required=True)
    ap.add_argument("--out", required=True, help="folder for train.parquet and val.parquet")
    ap.add_argument("--train", type=int, default=4096, help="training problems (arith: generated; math: at most)")
    ap.add_argument("--val", type=int, default=256, help="validation problems")
    ap.add_argument("--seed", type=int, default=0, help="arith: the generator's seed")
    ap.add_argument("--n-ops", type=int, default=4, help="arith: operations per problem")
    ap.add_argument("--train-file", action="append", default=[], help="math: problem files (JSONL/JSON/Parquet)")
    ap.add_argument("--eval-file", action="append", default=[], help="math: held-out problem files")
    ap.add_argument("--system-prompt", default=None, help="system message (math: the task's own by default)")
    args = ap.parse_args(argv)
    if args.task == "arith":
        from sgpo.tasks.arith import ArithSpec, ArithTask

        task = ArithTask(ArithSpec(n_ops=args.n_ops), seed=args.seed)
        system = args.system_prompt
    else:
        from sgpo.tasks.math_task import MathTask

        task = MathTask(args.train_file, args.eval_file)
        system = args.system_prompt if args.system_prompt is not None else task.system_prompt
    out = Path(args.out)
    for split, name, n in (("train", "train.parquet", args.train), ("validation", "val.parquet", args.val)):
        problems = task.problems(split, n)
        print(f"{write(out / name, rows(problems, args.task, split, system))}: {len(problems)} problems")


if __name__ == "__main__":
    main()

"""Write an sgpo task's problems as verl RL datasets (parquet), in the layout sgpo's reward function reads.

    sgpo data verl --task arith --train 4096 --val 256 --out data/arith
    sgpo data verl --task math --train-file gsm8k_train.jsonl --out data/gsm8k

Each row: ``data_source`` (``sgpo/arith`` or ``sgpo/math``: picks the verifier), ``prompt`` (chat
messages; verl applies the policy's chat template), ``ability``, ``reward_model`` (``style: rule``,
``ground_truth``: the final answer) and ``extra_info`` (``question``: the problem text the step
judge sees, ``reference``: the reference solution, ``split``, ``index``, ``id``).
"""

from __future__ import annotations

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


if __name__ == "__main__":  # the old `python -m` entry point: say where it went, and fail
    raise SystemExit("moved: run `sgpo data verl ...` (see `sgpo data verl --help`)")

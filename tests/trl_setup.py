"""A tiny TRL set-up shared by the TRL tests and their torchrun worker: a policy and tokenizer built
in code, arithmetic prompts, an outcome reward and a step judge that depend only on the text, so
any process (and the native grading step) computes the same outcomes and verdicts."""

from __future__ import annotations

import zlib

from datasets import Dataset

from sgpo.core import METHODS
from sgpo.judges.base import ERROR, Verdict
from sgpo.models.policies import arith_tokenizer, tiny_policy
from sgpo.tasks.arith import ArithTask

G = 4


def crc(text: str) -> int:
    return zlib.crc32(text.encode())


def outcome(completion: str, hard: bool) -> float:
    """Correct for about a third of the completions of an easy prompt, never for a hard one, so a
    batch has all-negative and mixed groups whatever the policy writes."""
    return 0.0 if hard else float(crc(completion) % 3 == 0)


def correct(prompts, completions, hard, **_) -> list[float]:
    """The outcome reward function (TRL calls it with the dataset's columns)."""
    return [outcome(c, h) for c, h in zip(completions, hard)]


def short(prompts, completions, **_) -> list[float]:
    """A second reward function, to show SGPO leaves the others alone."""
    return [-0.01 * len(c) for c in completions]


class TextJudge:
    """First error at a position read off the steps' text; one request in seven fails."""

    def __init__(self):
        self.calls = 0

    def judge(self, requests):
        self.calls += len(requests)
        out = []
        for r in requests:
            h = crc("\n".join(r.steps))
            out.append(Verdict.failed(len(r.steps), ERROR) if h % 7 == 0 else Verdict(h % (len(r.steps) + 1) - 1, len(r.steps)))
        return out


def dataset(n: int = 16) -> Dataset:
    rows = []
    for i, p in enumerate(ArithTask().problems("train", n)):
        rows.append({"prompt": p.question + "\n", "problem": p.question, "reference": p.reference, "answer": p.answer,
                     "hard": i % 2 == 0})
    return Dataset.from_list(rows)


def trainer(out_dir, judge_log=None, per_device: int = 8, steps: int = 2, method: str = "sgpo", two_rewards=False,
            no_judge=False, **extra):
    from sgpo.integrations.trl import SGPOConfig, SGPOTrainer

    tok = arith_tokenizer()
    newline = tok.convert_tokens_to_ids("\n")
    args = SGPOConfig(
        output_dir=str(out_dir), use_cpu=True, per_device_train_batch_size=per_device, num_generations=G,
        max_completion_length=12, max_steps=steps, report_to="none", logging_steps=1, save_strategy="no",
        gradient_checkpointing=False, seed=0,
        # A newline now and then gives the untrained policy's completions several steps to judge.
        generation_kwargs={"sequence_bias": [[[newline], 3.0]]}, sgpo_method=method, sgpo_step_mode="line",
        sgpo_judge_log=None if judge_log is None else str(judge_log), **{"sgpo_outcome_reward": "correct", **extra},
    )
    funcs = [short, correct] if two_rewards else [correct]
    return SGPOTrainer(tiny_policy(tok), reward_funcs=funcs, args=args, train_dataset=dataset(), processing_class=tok,
                       judge=TextJudge() if METHODS.get(method).judges and not no_judge else None)

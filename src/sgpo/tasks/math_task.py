"""Math word problems from files (or the built-in set), checked with math-verify.

    task = MathTask(train_files=["gsm8k_train.jsonl"], fields=Fields("question", "answer", None))
    task.problems("train", 1000)     # read and validated on first use
    task.verify(response, problem)   # 1.0 if the response's final answer equals the problem's

With no files, the splits are those of the built-in word-problem set
(:mod:`sgpo.tasks.wordproblems`). Held-out problems come from ``eval_files`` when given, else
from the built-in validation split; ``test`` is always the built-in test split unless
``eval_files`` are given. There is no exact rule judge for free-form math: use an LLM or PRM
judge (``judge.kind``).
"""

from __future__ import annotations

from pathlib import Path

from sgpo.errors import ConfigError
from sgpo.tasks.base import SPLITS, Problem
from sgpo.tasks.problem_files import Fields, read_problems
from sgpo.tasks.verify import AnswerChecker, Check, gold_answer
from sgpo.tasks.wordproblems import builtin_file

#: The built-in word-problem files' layout (sgpo.tasks.wordproblems).
BUILTIN_FIELDS = Fields("problem", "answer", "solution", "id")
SYSTEM_PROMPT = "Solve the problem step by step, one step per line, and put the final answer in \\boxed{}."


class MathTask:
    """Problems from JSONL/JSON/Parquet files; outcome by math-verify on the extracted final answer."""

    name = "math"
    step_mode = "line"
    system_prompt = SYSTEM_PROMPT

    def __init__(self, train_files: list[str] = (), eval_files: list[str] = (), fields: Fields = Fields(),
                 extraction=("boxed", "answer_line"), timeout_s: float = 5.0):
        builtin = {split: [builtin_file(split)] for split in SPLITS}
        self.files = {
            "train": [Path(f) for f in train_files] or builtin["train"],
            "validation": [Path(f) for f in eval_files] or builtin["validation"],
            "test": [Path(f) for f in eval_files] or builtin["test"],
        }
        # The built-in files keep their own layout whatever the user configured for theirs.
        self.fields = {s: fields if (s == "train" and train_files) or (s != "train" and eval_files) else BUILTIN_FIELDS
                       for s in SPLITS}
        self.checker = AnswerChecker(timeout_s, extraction)
        self._loaded: dict[str, list[Problem]] = {}

    def problems(self, split: str, n: int) -> list[Problem]:
        """The first ``n`` problems of ``split`` (all of them if there are fewer), in file order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        if split not in self._loaded:
            self._loaded[split] = [p for f in self.files[split] for p in read_problems(f, self.fields[split])]
        return self._loaded[split][:n]

    def check(self, response: str, problem: Problem) -> Check:
        """The full verdict on a response: correct or not, why, and the answer extracted."""
        return self.checker.check(problem.answer, response)

    def verify(self, response: str, problem: Problem) -> float:
        return float(self.check(response, problem).correct)

    def gold_answer(self, ground_truth: str) -> str:
        """A data set's answer field (``#### 42``, ``\\boxed{42}``, ``42``) as the answer to compare with."""
        return gold_answer(str(ground_truth))

    def verify_stats(self) -> dict[str, int]:
        """How many checks came to each status (correct, wrong, no_answer, unparsable, timeout, error)."""
        return dict(self.checker.stats)

    def rule_judge(self):
        """Free-form math has no exact rule judge; asking for one is a configuration error."""
        raise ConfigError(
            "judge.kind=rule needs a task with an exact rule judge, and task.name=math has none; "
            "use judge.kind=llm_http, llm_local or prm, or a method without a judge (algorithm.method=grpo)"
        )

    def close(self) -> None:
        self.checker.close()

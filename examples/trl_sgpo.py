"""SGPO with TRL on GPUs: a GRPO run whose all-negative groups are graded by a step judge.

The policy trains with TRL's GRPOTrainer (accelerate / DeepSpeed, optionally vLLM for sampling);
the step judge is a prompted LLM on its own OpenAI-compatible server. Three terminals, e.g. on
one 8-GPU node (docs/scale.md has multi-node variants):

    # 1. the step judge (GPUs 4-7)
    CUDA_VISIBLE_DEVICES=4,5,6,7 vllm serve Qwen/Qwen2.5-32B-Instruct --port 8001 --tensor-parallel-size 4
    # 2. TRL's vLLM server for sampling from the policy (GPU 3)
    CUDA_VISIBLE_DEVICES=3 trl vllm-serve --model Qwen/Qwen2.5-Math-1.5B --port 8000
    # 3. training (GPUs 0-2), ZeRO-3
    CUDA_VISIBLE_DEVICES=0,1,2 accelerate launch --num_processes 3 --config_file zero3.yaml \\
        examples/trl_sgpo.py --model Qwen/Qwen2.5-Math-1.5B --train data/math_train.jsonl \\
        --judge examples/judge_vllm.yaml --use-vllm --out runs/trl-sgpo

Data: a JSONL/JSON/Parquet file with a problem, a reference answer and (optionally) a reference
solution per row (GSM8K, MATH layouts are detected; see docs/data.md). Compare with GRPO by
running the same command with ``--method grpo``.
"""

from __future__ import annotations

import argparse

from datasets import Dataset

from sgpo.integrations.trl import SGPOConfig, SGPOTrainer
from sgpo.tasks.problem_files import read_problems_auto
from sgpo.tasks.verify import AnswerChecker

SYSTEM = ("Solve the problem step by step, one step per line. "
          "Write the final answer as \\boxed{ANSWER} on the last line.")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="policy: a hub name or a local directory")
    p.add_argument("--train", required=True, help="problem file (JSONL, JSON or Parquet)")
    p.add_argument("--judge", default="examples/judge_vllm.yaml", help="step judge settings (YAML)")
    p.add_argument("--method", default="sgpo", choices=["sgpo", "grpo", "random", "ngrpo"])
    p.add_argument("--out", default="runs/trl-sgpo")
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--per-device-batch", type=int, default=16, help="completions per GPU per step")
    p.add_argument("--max-completion-length", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--use-vllm", action="store_true", help="sample with TRL's vLLM server (trl vllm-serve)")
    return p.parse_args()


def load(path: str) -> Dataset:
    """The problem file as TRL rows: a chat prompt plus the columns SGPO's judge reads."""
    problems, _ = read_problems_auto(path)
    return Dataset.from_list([
        {"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p.question}],
         "problem": p.question, "reference": p.reference or None, "answer": p.answer}
        for p in problems
    ])


checker = AnswerChecker(timeout_s=5.0)


def correct(prompts, completions, answer, **_) -> list[float]:
    """The outcome: 1 if the boxed answer equals the reference (math-verify), else 0."""
    return [float(checker.check(gold, c[-1]["content"]).correct) for c, gold in zip(completions, answer)]


def boxed(prompts, completions, **_) -> list[float]:
    """A small format reward beside the outcome: SGPO grades only the outcome column."""
    return [0.1 * ("\\boxed{" in c[-1]["content"]) for c in completions]


def main() -> None:
    a = parse_args()
    args = SGPOConfig(
        output_dir=a.out, num_generations=a.num_generations, per_device_train_batch_size=a.per_device_batch,
        max_completion_length=a.max_completion_length, learning_rate=a.lr, max_steps=a.max_steps,
        bf16=True, gradient_checkpointing=True, logging_steps=1, save_steps=100, report_to="tensorboard",
        use_vllm=a.use_vllm, vllm_mode="server",
        sgpo_method=a.method, sgpo_judge=a.judge if a.method == "sgpo" else None, sgpo_outcome_reward="correct",
        sgpo_step_mode="line", sgpo_max_steps=20,
    )
    trainer = SGPOTrainer(a.model, reward_funcs=[correct, boxed], args=args, train_dataset=load(a.train))
    trainer.train()
    trainer.save_model(a.out)


if __name__ == "__main__":
    main()

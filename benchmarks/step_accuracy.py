"""Where the held-out responses first go wrong, at each checkpoint of `sgpo compare` runs.

    python benchmarks/step_accuracy.py runs/compare/grpo/seed_0 runs/compare/sgpo/seed_0

For the warmed-up policy (step 0) and every saved checkpoint of each run: eval_k samples per
held-out problem at the rollout temperature (as ``eval/avg@k``), each judged by the task's rule
judge. Prints, per (run, step), avg@k (every step right), the mean reasoning-trajectory score
over all responses (share of steps before the first error; 1 for a correct response) and the
share of responses whose first error is at each step. A policy gradient that raises every
step's accuracy a little moves the mean RTS at once but the all-steps-right share only as a
power of it, which is why a gap in avg@k opens late.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sgpo.judges.base import JudgeRequest
from sgpo.sampling.rollout import generate
from sgpo.tasks.steps import split_steps
from sgpo.train.checkpoint import load_policy_weights
from sgpo.train.config import load_config
from sgpo.train.runtime import pick_device, prompt_for, task_for
from sgpo.train.sft import initial_policy


def measure(policy, tokenizer, cfg, task, problems, seed: int) -> dict:
    prompt = prompt_for(cfg, task, tokenizer)
    k = cfg.train.eval_k
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out = generate(policy, tokenizer, [prompt(p.question) for p in problems], n=k,
                       temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, max_new_tokens=cfg.rollout.max_new_tokens)
    judge = task.rule_judge()
    correct = [task.verify(t, problems[i // k]) for i, t in enumerate(out.texts)]
    requests = [JudgeRequest(problems[i // k].question, split_steps(t, task.step_mode)) for i, t in enumerate(out.texts)]
    rts, first = [], {}
    for ok, v in zip(correct, judge.judge(requests)):
        if ok >= 1 or v.first_error < 0:  # every step right (a wrong answer may still follow them)
            rts.append(1.0)
            if ok < 1:
                first["wrong answer, no wrong step"] = first.get("wrong answer, no wrong step", 0) + 1
        else:
            rts.append(v.first_error / max(v.n_steps, 1))
            first[f"step {v.first_error}"] = first.get(f"step {v.first_error}", 0) + 1
    n = len(correct)
    return {"avg@k": sum(correct) / n, "mean_rts": sum(rts) / n,
            "first_error": {key: round(c / n, 3) for key, c in sorted(first.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories written by `sgpo train` / `sgpo compare`")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    results = []
    for run in map(Path, args.runs):
        cfg = load_config(run / "config.yaml", [])
        task, device = task_for(cfg), pick_device(cfg)
        problems = task.problems("validation", cfg.task.n_eval)
        torch.manual_seed(cfg.train.seed)
        policy, tokenizer = initial_policy(cfg, device, lambda *a: None, lora=False)
        policy.eval()
        checkpoints = sorted((run / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
        for step, ckpt in [(0, None)] + [(int(c.name.split("_")[1]), c) for c in checkpoints]:
            if ckpt is not None:
                load_policy_weights(policy, ckpt)
                policy.eval()
            r = {"run": str(run), "step": step, **measure(policy, tokenizer, cfg, task, problems, cfg.train.seed * 31 + step)}
            results.append(r)
            print(f"{run}  step {step:>3}: avg@{cfg.train.eval_k} {r['avg@k']:.3f}  mean RTS {r['mean_rts']:.3f}  "
                  f"first error {r['first_error']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

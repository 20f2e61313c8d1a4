"""Seconds per RL step and peak memory: the native trainer vs TRL's GRPOTrainer vs SGPOTrainer.

    python benchmarks/engines.py                       # tiny default policy and SmolLM2-135M, all engines
    python benchmarks/engines.py --models tiny --steps 8

Each engine runs in its own process (so its peak resident memory is its own) on identical work:
the same starting weights, task, prompts per step, group size G, new tokens, temperature,
learning rate, one optimizer update per RL step, no KL term, bf16 autocast on CPU. Engines take
turns for ``--rounds`` rounds. Reported: per run, the median seconds per step over the steps
after the first (which pays one-off costs); per engine, the best round, every round, the peak RSS
of its processes, and its best time as a ratio to the native trainer's in the same run.

``child`` is also what benchmarks/throughput.py runs: per step it records seconds, the split into
sample / judge / train and the generated tokens.

Work per model:
  tiny     the default's warmed-up tiny Llama (configs/arith.yaml), 128 prompts x 4, 48 tokens;
           SGPO with the exact rule judge.
  smollm2  SmolLM2-135M-Instruct (``sgpo models prepare smollm2``) on the built-in word problems,
           2 prompts x 4, 128 tokens; SGPO with a constant judge (first error at the last step),
           so the row measures SGPO's machinery, not an LLM judge's latency (docs/judges.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("native-grpo", "native-sgpo", "trl-grpo", "trl-sgpo")
ROOT = Path(__file__).resolve().parent.parent
#: SmolLM2's directory: $SGPO_SMOLLM2, else models/ of this checkout (``sgpo models prepare smollm2``).
SMOLLM2 = os.environ.get("SGPO_SMOLLM2", str(ROOT / "models" / "smollm2-135m-instruct"))
WORK = {
    "tiny": [],
    "smollm2": ["task.name=math", f"model.path={SMOLLM2}", "warmup.steps=0",
                "rollout.prompts_per_step=2", "rollout.max_new_tokens=128", "optim.mini_batch_size=8"],
}


class LastStepJudge:
    """A judge that costs nothing: every response is wrong at its last step."""

    def judge(self, requests):
        from sgpo.judges.base import Verdict

        return [Verdict(len(r.steps) - 1, len(r.steps)) for r in requests]


def config(model: str, method: str, extra: list[str] = ()):
    from sgpo.train.compare import default_config_path
    from sgpo.train.config import load_config

    # The native trainer evaluates before the first step and after the last whatever eval_every says:
    # one problem, one sample, so that is not minutes of SmolLM2 sampling outside the timed steps.
    return load_config(default_config_path(), [*WORK[model], f"algorithm.method={method}", "train.eval_every=0",
                                               "task.n_eval=1", "train.eval_k=1",
                                               "train.progress=false", "train.save_every=0", *extra])


def judge_for(model: str, task):
    return task.rule_judge() if model == "tiny" else LastStepJudge()


def run_native(model: str, method: str, steps: int, extra: list[str] = ()) -> list[dict]:
    """Per step: seconds, its split (sample: sampling and answer checks; judge; train) and generated tokens."""
    from sgpo.train.trainer import Trainer

    cfg = config(model, method, extra)
    cfg.train.steps = steps
    with tempfile.TemporaryDirectory() as tmp:
        from sgpo.train.runtime import task_for

        judge = judge_for(model, task_for(cfg)) if method == "sgpo" else None
        Trainer(cfg, Path(tmp) / "run", log=lambda *a: None, judge=judge).train()
        history = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    batch = cfg.rollout.prompts_per_step * cfg.rollout.group_size
    return [{"s": m["time/step"], "sample": m["time/generate"], "sample_only": m["time/sample"], "judge": m["time/judge"], "train": m["time/train"],
             "tokens": m["response_tokens/mean"] * batch, **{k: m[k] for k in m if k.startswith("sampling/")}}
            for m in history if "time/step" in m]


def run_trl(model: str, method: str, steps: int, extra: list[str] = ()) -> list[dict]:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from sgpo.integrations.trl import SGPOConfig, SGPOTrainer
    from sgpo.train.runtime import pick_device, prompt_for, task_for
    from sgpo.train.sft import initial_policy

    cfg = config(model, method, extra)
    torch.manual_seed(cfg.train.seed)
    policy, tokenizer = initial_policy(cfg, pick_device(cfg), log=lambda *a: None)
    task = task_for(cfg)
    prompt = prompt_for(cfg, task, tokenizer)
    problems = task.problems("train", cfg.task.n_train if model == "tiny" else 64)
    by_prompt = {prompt(p.question): p for p in problems}
    ds = Dataset.from_list([{"prompt": q} for q in by_prompt])

    def correct(prompts, completions, **_):
        return [task.verify(c, by_prompt[p]) for p, c in zip(prompts, completions)]

    r = cfg.rollout
    batch = r.prompts_per_step * r.group_size
    args = SGPOConfig(
        output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=cfg.train.bf16, gradient_checkpointing=False,
        per_device_train_batch_size=batch, gradient_accumulation_steps=1, num_generations=r.group_size,
        max_completion_length=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p, learning_rate=cfg.optim.lr,
        lr_scheduler_type="constant", warmup_steps=0, beta=0.0, max_steps=steps, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, sgpo_method=method, sgpo_step_mode=task.step_mode, seed=cfg.train.seed,
    )
    rows: list[dict] = []
    spent = {"sample": 0.0, "judge": 0.0}

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.t0 = time.perf_counter()
            spent.update(sample=0.0, judge=0.0)

        def on_step_end(self, *_, **__):
            s = time.perf_counter() - self.t0
            rows.append({"s": s, **spent, "train": s - spent["sample"] - spent["judge"]})

    trainer = SGPOTrainer(policy, reward_funcs=[correct], args=args, train_dataset=ds, processing_class=tokenizer,
                          judge=judge_for(model, task) if method == "sgpo" else None, callbacks=[Clock()])

    def timed(name, key):  # an instance attribute over the method: the split without touching TRL's code
        inner = getattr(trainer, name)

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t0
        setattr(trainer, name, wrapper)

    timed("_generate_single_turn", "sample")  # generation alone (the answer checks are in rewards)
    timed("_calculate_rewards", "judge")  # answer checks and, for SGPO, the judge
    trainer.train()
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    for row, n in zip(rows, lengths):
        row["tokens"] = n * batch
    return rows


def child(engine: str, model: str, steps: int, extra: list[str] = ()) -> None:
    kind, method = engine.split("-")
    rows = (run_native if kind == "native" else run_trl)(model, method, steps, list(extra))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    print(json.dumps({"engine": engine, "model": model, "times": [r["s"] for r in rows], "steps": rows, "peak_gb": peak_gb,
                      "extra": list(extra)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(WORK), choices=list(WORK))
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2, help="runs of each engine, taking turns (default 2)")
    p.add_argument("--out", default="benchmarks/results/engines.json")
    p.add_argument("--child", nargs=2, metavar=("ENGINE", "MODEL"), help=argparse.SUPPRESS)
    p.add_argument("--set", nargs="*", default=[], help="config overrides for every engine (key=value)")
    a = p.parse_args()
    if a.child:
        return child(a.child[0], a.child[1], a.steps, a.set)
    results = []
    for model in a.models:
        # Engines take turns, round after round, so a load that comes and goes on a shared machine
        # falls on all of them; each engine's best round is the least disturbed one.
        for r in range(a.rounds):
            for engine in a.engines:
                out = subprocess.run([sys.executable, __file__, "--child", engine, model, "--steps", str(a.steps), "--set", *a.set],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"{engine} on {model} failed:\n{out.stderr[-3000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                res["round"] = r
                res["s_per_step"] = statistics.median(res["times"][1:] or res["times"])
                results.append(res)
                print(f"{model:8} {engine:12} round {r}: {res['s_per_step']:7.2f} s/step  peak {res['peak_gb']:.2f} GB",
                      flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1))
    print(f"\n| model | engine | s / step (best of {a.rounds} rounds) | all rounds | × native GRPO | peak memory |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for model in a.models:
        best = {}
        for engine in a.engines:
            runs = [r for r in results if r["model"] == model and r["engine"] == engine]
            best[engine] = (min(r["s_per_step"] for r in runs), [r["s_per_step"] for r in runs], max(r["peak_gb"] for r in runs))
        base = best.get("native-grpo", (None,))[0]
        for engine, (t, all_t, peak) in best.items():
            ratio = f"{t / base:.2f}" if base else "-"
            print(f"| {model} | {engine} | {t:.2f} | {', '.join(f'{x:.2f}' for x in all_t)} | {ratio} | {peak:.2f} GB |")


if __name__ == "__main__":
    main()

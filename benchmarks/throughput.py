"""Throughput of an RL step: the native trainer against TRL's GRPOTrainer, and against the machine.

    python benchmarks/throughput.py engines [--models tiny smollm2] [--rounds 2] [--steps 5]
    python benchmarks/throughput.py scaling [--model tiny]         # step time against G, tokens, prompts
    python benchmarks/throughput.py learning [--seeds 0 1 2]       # curves with the speed-ups vs published
    python benchmarks/throughput.py profile [--model smollm2]      # where sampling's time goes
    python benchmarks/throughput.py report                          # BENCHMARKS.md section + PNGs

``engines`` runs each engine in its own process on identical work (benchmarks/engines.py's set-up:
same weights, task, batch, tokens, temperature, lr, one update per step, no KL, bf16 autocast),
taking turns for ``--rounds`` rounds; per run it records seconds per step (median over steps after
the first) split into sample / judge / train, generated tokens per second and peak RSS. In the same
run it measures the machine: memory read bandwidth and bf16 / fp32 matmul rates with torch's own
threads, from which it computes the sampling bound (below).

Sampling bound of one step (``sampling_bound``): every decode step must read the bf16 weights and
the KV cache once (bytes / bandwidth) and do 2 * params * batch FLOPs (/ bf16 matmul rate); the
bound is the larger of the two, times max_new_tokens decode steps, plus the prefill's FLOPs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "throughput"
sys.path.insert(0, str(Path(__file__).resolve().parent))


ENGINES = ("native-grpo", "trl-grpo")
BEGIN, END = "<!-- throughput.py:begin -->", "<!-- throughput.py:end -->"
#: model -> (the work the sweep varies around, the values each key takes in turn).
SWEEPS = {
    "smollm2": ({"rollout.group_size": 4, "rollout.max_new_tokens": 128, "rollout.prompts_per_step": 2},
                {"rollout.group_size": [2, 4, 8], "rollout.max_new_tokens": [32, 64, 128], "rollout.prompts_per_step": [1, 2, 4]}),
    "tiny": ({"rollout.group_size": 4, "rollout.max_new_tokens": 48, "rollout.prompts_per_step": 128},
             {"rollout.group_size": [2, 4, 8], "rollout.max_new_tokens": [16, 32, 48], "rollout.prompts_per_step": [32, 64, 128]}),
}


def best_of(f, n: int) -> float:
    f()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def machine() -> dict:
    """Memory read bandwidth (sum of 1 GiB of fp32) and bf16 / fp32 matmul rates (2048^3), torch's threads."""
    import torch

    x = torch.ones(2**28)
    read = x.numel() * 4 / best_of(lambda: x.sum(), 5)
    out = {"threads": torch.get_num_threads(), "read_GBps": read / 1e9}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a = torch.randn(2048, 2048, dtype=dtype)
        out[f"matmul_{name}_TFLOPs"] = 2 * 2048**3 / best_of(lambda: a @ a, 3) / 1e12
    return out


def geometry(model: str, extra: list[str]) -> dict:
    """What the bound needs: parameters (unique: a tied head counts once), batch, new tokens, and the
    padded prompt width of a step, estimated over 50 random batches of the configured prompts."""
    import random

    import torch
    from engines import config
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from sgpo.models.policies import arith_tokenizer, tiny_policy
    from sgpo.train.runtime import prompt_for, task_for

    cfg = config(model, "grpo", extra)
    if cfg.model.path:
        tok = AutoTokenizer.from_pretrained(cfg.model.path, local_files_only=True)
        with torch.device("meta"):
            net = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cfg.model.path))
    else:
        tok = arith_tokenizer()
        m = cfg.model
        net = tiny_policy(tok, m.arch, m.n_layers, m.d_model, m.n_heads)
    task = task_for(cfg)
    prompt = prompt_for(cfg, task, tok)
    widths = [len(tok(prompt(p.question), add_special_tokens=False)["input_ids"]) for p in task.problems("train", 200)]
    rng = random.Random(0)
    N, G = cfg.rollout.prompts_per_step, cfg.rollout.group_size
    P = statistics.mean(max(rng.sample(widths, N)) for _ in range(50))
    c = net.config
    kv_dim = c.num_key_value_heads * getattr(c, "head_dim", c.hidden_size // c.num_attention_heads)
    return {"params": sum(p.numel() for p in net.parameters()), "batch": N * G, "new_tokens": cfg.rollout.max_new_tokens,
            "prompt_width": P, "layers": c.num_hidden_layers, "kv_dim": kv_dim}


def sampling_bound(geo: dict, hw: dict, bytes_per_param: int = 2) -> dict:
    """Seconds one step's sampling needs at least: per decode step the larger of reading the bf16
    weights and the KV cache (filled to P + T/2 on average) once, and 2 * params * batch FLOPs;
    plus the prefill's FLOPs. Attention FLOPs and activations are left out: a lower bound."""
    n, B, T, P = geo["params"], geo["batch"], geo["new_tokens"], geo["prompt_width"]
    kv_bytes = geo["layers"] * 2 * B * geo["kv_dim"] * (P + T / 2) * bytes_per_param
    read = (n * bytes_per_param + kv_bytes) / (hw["read_GBps"] * 1e9)
    compute = 2 * n * B / (hw["matmul_bf16_TFLOPs"] * 1e12)
    prefill = 2 * n * B * P / (hw["matmul_bf16_TFLOPs"] * 1e12)
    return {"decode_step_s": max(read, compute), "bound_by": "memory" if read >= compute else "compute",
            "prefill_s": prefill, "sample_s": T * max(read, compute) + prefill}


def run_child(engine: str, model: str, steps: int, extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "engines.py"), "--child", engine, model,
                          "--steps", str(steps), "--set", *extra], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{engine} on {model} {extra} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(res: dict) -> dict:
    """Medians over the steps after the first: s/step, sample (sampling alone), judge (answer checks +
    judge), train (the rest), generated tokens/s; peak RSS."""
    rows = res["steps"][1:] or res["steps"]
    med = lambda f: statistics.median(f(r) for r in rows)  # noqa: E731
    sample = med(lambda r: r.get("sample_only", r["sample"]))
    out = {"s_per_step": med(lambda r: r["s"]), "sample": sample,
           "judge": med(lambda r: r["judge"] + r["sample"] - r.get("sample_only", r["sample"])),
           "tokens_per_s": med(lambda r: r["tokens"] / r["s"]), "peak_gb": res["peak_gb"]}
    out["train"] = out["s_per_step"] - out["sample"] - out["judge"]
    for k in ("sampling/is_ratio_mean", "sampling/is_ratio_min", "sampling/is_ratio_max"):
        if k in rows[0]:
            out[k] = statistics.mean(r[k] for r in rows)
    return out


def engines_cmd(models: list[str], rounds: int, steps: int, out_name: str = "engines.json") -> None:
    """Each model's rounds, with the machine measured before and after; merged into ``out_name`` by model."""
    out = RESULTS / out_name
    results = json.loads(out.read_text()) if out.exists() else {"models": {}}
    for model in models:
        hw = machine()
        print(f"machine: {hw}", flush=True)
        entry = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": hw, "steps": steps,
                 "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_before": os.getloadavg()}
        geo = geometry(model, [])
        runs = []
        # Engines take turns, so a load that comes and goes falls on both.
        for r in range(rounds):
            for engine in ENGINES:
                res = run_child(engine, model, steps, [])
                res["round"], res["summary"] = r, summary(res)
                runs.append(res)
                print(f"{model:8} {engine:12} round {r}: {json.dumps({k: round(v, 3) for k, v in res['summary'].items()})}",
                      flush=True)
        entry.update(geometry=geo, bound=sampling_bound(geo, hw), runs=runs, machine_after=machine(),
                     load_after=os.getloadavg())
        results["models"][model] = entry
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


def scaling_cmd(model: str, steps: int) -> None:
    hw = machine()
    points = []
    base, sweep = SWEEPS[model]
    for key, values in sweep.items():
        for v in values:
            setting = {**base, key: v}
            extra = [f"{k}={x}" for k, x in setting.items()]
            extra.append(f"optim.mini_batch_size={setting['rollout.group_size'] * setting['rollout.prompts_per_step']}")
            prior = next((p for p in points if p["setting"] == setting), None)
            if prior is None:
                res = run_child("native-grpo", model, steps, extra)
                prior = {"setting": setting, "summary": summary(res), "geometry": geometry(model, extra)}
                prior["bound"] = sampling_bound(prior["geometry"], hw)
                print(f"{key}={v}: {json.dumps({k: round(x, 3) for k, x in prior['summary'].items()})}", flush=True)
            points.append({**prior, "varied": key})
    out = RESULTS / f"scaling_{model}.json"
    out.write_text(json.dumps({"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": hw,
                               "model": model, "steps": steps, "points": points}, indent=1))
    print(f"wrote {out}")


def learning(seeds: list[int], labels: list[str]) -> None:
    """The default (configs/arith.yaml, full length) with this code's speed-ups, for comparison with the
    published runs under benchmarks/results/learning/arith (made before them)."""
    import tempfile

    from learning import run_one

    for label in labels:
        for seed in seeds:
            out = RESULTS / "learning" / label / f"seed_{seed}.json"
            if out.exists():
                continue
            with tempfile.TemporaryDirectory() as tmp:
                res = run_one("arith", label, seed, Path(tmp))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(res, indent=1))
            print(f"{label} seed {seed}: {res['wall_seconds']:.0f} s, last {res['metric']} "
                  f"{[m[res['metric']] for m in res['history'] if res['metric'] in m][-1]:.3f}", flush=True)


def profile_cmd(model: str) -> None:
    """Where one step's sampling goes (torch.profiler over ``generate(sampler="kv")``), and the weight
    read rate the linear layers reach against the machine's read bandwidth."""
    import torch
    from engines import config
    from torch.profiler import profile

    from sgpo.sampling.rollout import generate
    from sgpo.train.runtime import autocast, prompt_for, task_for
    from sgpo.train.sft import initial_policy

    hw = machine()
    cfg = config(model, "grpo")
    torch.manual_seed(0)
    policy, tok = initial_policy(cfg, torch.device("cpu"), log=lambda *a: None)
    policy.eval()
    task = task_for(cfg)
    prompt = prompt_for(cfg, task, tok)
    prompts = [prompt(p.question) for p in task.problems("train", 64)[: cfg.rollout.prompts_per_step]]
    r = cfg.rollout

    def sample():
        with autocast(torch.device("cpu"), cfg.train.bf16):
            return generate(policy, tok, prompts, n=r.group_size, temperature=r.temperature,
                            max_new_tokens=r.max_new_tokens, sampler="kv")

    sample()
    t0 = time.perf_counter()
    out = sample()
    plain = time.perf_counter() - t0
    with profile() as prof:
        sample()
    events = prof.key_averages()
    linear_us = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "mkldnn::_linear_pointwise"))
    total_us = sum(e.self_cpu_time_total for e in events)
    steps = out.response_mask.shape[1]
    geo = geometry(model, [])
    weight_GBps = geo["params"] * 2 * steps / (linear_us / 1e6) / 1e9
    res = {"machine": hw, "sample_s": plain, "decode_steps": steps, "profiled_total_s": total_us / 1e6,
           "linear_s": linear_us / 1e6, "linear_weight_read_GBps": weight_GBps, "bound": sampling_bound(geo, hw),
           "table": events.table(sort_by="self_cpu_time_total", row_limit=14)}
    (RESULTS / f"profile_{model}.json").write_text(json.dumps(res, indent=1))
    print(res["table"])
    print({k: v for k, v in res.items() if k != "table"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    ep = sub.add_parser("engines")
    ep.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    ep.add_argument("--rounds", type=int, default=2)
    ep.add_argument("--steps", type=int, default=5)
    ep.add_argument("--out", default="engines.json", help="results file under benchmarks/results/throughput/")
    sp = sub.add_parser("scaling")
    sp.add_argument("--model", default="tiny", choices=list(SWEEPS))
    sp.add_argument("--steps", type=int, default=3)
    pp = sub.add_parser("profile")
    pp.add_argument("--model", default="smollm2")
    sub.add_parser("report")
    lp = sub.add_parser("learning")
    lp.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    lp.add_argument("--labels", nargs="+", default=["sgpo", "grpo"])
    a = p.parse_args()
    if a.cmd == "engines":
        engines_cmd(a.models, a.rounds, a.steps, a.out)
    elif a.cmd == "scaling":
        scaling_cmd(a.model, a.steps)
    elif a.cmd == "profile":
        profile_cmd(a.model)
    elif a.cmd == "learning":
        learning(a.seeds, a.labels)
    else:
        from throughput_report import report

        report()


if __name__ == "__main__":
    main()

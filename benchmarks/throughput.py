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
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from engines import config
    from sgpo.models import arith_tokenizer, tiny_policy
    from sgpo.train.setup import make_task, prompt_for

    cfg = config(model, "grpo", extra)
    if cfg.model.path:
        tok = AutoTokenizer.from_pretrained(cfg.model.path, local_files_only=True)
        with torch.device("meta"):
            net = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cfg.model.path))
    else:
        tok = arith_tokenizer()
        m = cfg.model
        net = tiny_policy(tok, m.arch, m.n_layers, m.d_model, m.n_heads)
    task = make_task(cfg)
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
    from torch.profiler import profile

    from engines import config
    from sgpo.sampling import generate
    from sgpo.train.setup import autocast, make_task, prompt_for
    from sgpo.train.sft import initial_policy

    hw = machine()
    cfg = config(model, "grpo")
    torch.manual_seed(0)
    policy, tok = initial_policy(cfg, torch.device("cpu"), log=lambda *a: None)
    policy.eval()
    task = make_task(cfg)
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


def _engine_rows(model_res: dict) -> dict[str, dict]:
    """engine -> its best round's summary (least disturbed), with every round's s/step."""
    out = {}
    for engine in ENGINES:
        runs = [r for r in model_res["runs"] if r["engine"] == engine]
        best = min(runs, key=lambda r: r["summary"]["s_per_step"])
        out[engine] = {**best["summary"], "rounds": [r["summary"]["s_per_step"] for r in runs]}
    return out


def report() -> None:
    from sgpo.report import plt

    eng = json.loads((RESULTS / "engines.json").read_text())
    lines = [BEGIN, "## Throughput against GRPOTrainer and against the machine (issue 13)", "",
             "```bash", "python benchmarks/throughput.py engines --models tiny --rounds 2 --steps 5",
             "python benchmarks/throughput.py engines --models smollm2 --rounds 1 --steps 4",
             "python benchmarks/throughput.py scaling --model tiny --steps 3",
             "python benchmarks/throughput.py profile --model smollm2",
             "python benchmarks/throughput.py learning --seeds 0 1 2", "python benchmarks/throughput.py report",
             "```", "",
             "The project's 2-core CPU machine (torch 2.13.0+cpu, trl 1.16.0), **shared** while measuring with one "
             "long benchmark (1 core) and other sessions' test runs. Both engines run GRPO on identical work "
             "(benchmarks/engines.py), each in its own process, taking turns; per run the median over steps 2..5; an "
             "engine's row is its best round. sample = sampling alone; judge = answer checks + judge; train = the rest "
             "(log-prob and training passes, optimizer). Bandwidth and matmul rates are measured in the same run, "
             "just before the engines.", ""]
    fig, axes = plt.subplots(1, len(eng["models"]), figsize=(5.2 * len(eng["models"]), 3.6), squeeze=False)
    for ax, (model, res) in zip(axes[0], eng["models"].items()):
        rows, b, g = _engine_rows(res), res["bound"], res["geometry"]
        native, trl = rows["native-grpo"], rows["trl-grpo"]
        per_round = [t / n for n, t in zip(native["rounds"], trl["rounds"])]
        hw, hw2 = res["machine"], res["machine_after"]
        lines += [f"### {model}: {g['batch'] // 4} prompts x 4, {g['new_tokens']} new tokens, {g['params'] / 1e6:.1f} M parameters",
                  "", f"Measured {res['date']}, torch threads {hw['threads']}, load average {res['load_before'][0]:.1f} before and "
                  f"{res['load_after'][0]:.1f} after; memory read {hw['read_GBps']:.0f} GB/s, bf16 matmul "
                  f"{hw['matmul_bf16_TFLOPs']:.2f} TFLOP/s, fp32 {hw['matmul_fp32_TFLOPs']:.2f} TFLOP/s (after the engines: "
                  f"{hw2['read_GBps']:.0f} GB/s, {hw2['matmul_bf16_TFLOPs']:.2f} TFLOP/s).", "",
                  "| engine | s / step (best) | all rounds | sample s | judge s | train s | tokens / s | peak RSS |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for engine, r in rows.items():
            lines.append(f"| {engine} | {r['s_per_step']:.2f} | {', '.join(f'{x:.2f}' for x in r['rounds'])} | "
                         f"{r['sample']:.2f} | {r['judge']:.3f} | {r['train']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_gb']:.2f} GB |")
        lines += ["", f"Native steps/s over GRPOTrainer's: **{trl['s_per_step'] / native['s_per_step']:.2f}x** (best rounds); "
                  f"round by round {', '.join(f'{x:.2f}x' for x in per_round)}.",
                  f"Sampling bound ({b['bound_by']}-bound decode step {b['decode_step_s'] * 1e3:.1f} ms x {g['new_tokens']} "
                  f"+ prefill {b['prefill_s']:.3f} s, prompt width ~{g['prompt_width']:.0f}): **{b['sample_s']:.2f} s**; "
                  f"native sampling {native['sample']:.2f} s = **{native['sample'] / b['sample_s']:.1f}x** the bound."]
        best_hw = {k: max(e[m][k] for e in eng["models"].values() for m in ("machine", "machine_after"))
                   for k in ("read_GBps", "matmul_bf16_TFLOPs")}
        b_best = sampling_bound(g, best_hw)
        lines.append(f"Against the best rates measured in any run of this file ({best_hw['read_GBps']:.0f} GB/s, "
                     f"{best_hw['matmul_bf16_TFLOPs']:.2f} TFLOP/s): bound {b_best['sample_s']:.2f} s, native sampling "
                     f"{native['sample'] / b_best['sample_s']:.1f}x the bound.")
        if "sampling/is_ratio_mean" in native:
            lines.append(f"Sampling correction: importance ratios exp(logp_train - logp_sample) mean "
                         f"{native['sampling/is_ratio_mean']:.4f}, min {native['sampling/is_ratio_min']:.3f}, "
                         f"max {native['sampling/is_ratio_max']:.3f} (per step, averaged over steps).")
        lines.append("")
        names = list(rows)
        bottom = [0.0] * len(names)
        for part in ("sample", "judge", "train"):
            vals = [rows[n][part] for n in names]
            ax.bar(names, vals, bottom=bottom, label=part)
            bottom = [x + y for x, y in zip(bottom, vals)]
        ax.axhline(b["sample_s"], color="k", ls="--", lw=1, label="sampling bound")
        ax.set_title(model)
        ax.set_ylabel("s / step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "benchmarks" / "results" / "throughput_engines.png", dpi=120)
    lines += ["![step split](benchmarks/results/throughput_engines.png)", ""]
    for path in sorted(RESULTS.glob("scaling_*.json")):
        sc = json.loads(path.read_text())
        base, sweep = SWEEPS[sc["model"]]
        around = " x ".join(str(base[k]) for k in ("rollout.prompts_per_step", "rollout.group_size", "rollout.max_new_tokens"))
        lines += [f"### How a native step grows ({sc['model']}, GRPO, {sc['date']}, around prompts x G x tokens = {around}, "
                  f"{sc['machine']['threads']} thread(s))", "",
                  "| varied | value | s / step | sample s | train s | tokens / s | sampling bound s | sample / bound |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        fig, axes = plt.subplots(1, len(sweep), figsize=(12, 3.4))
        for ax, key in zip(axes, sweep):
            pts = [p for p in sc["points"] if p["varied"] == key]
            xs = [p["setting"][key] for p in pts]
            for p, x in zip(pts, xs):
                m = p["summary"]
                lines.append(f"| {key.split('.')[-1]} | {x} | {m['s_per_step']:.2f} | {m['sample']:.2f} | {m['train']:.2f} | "
                             f"{m['tokens_per_s']:.0f} | {p['bound']['sample_s']:.2f} | {m['sample'] / p['bound']['sample_s']:.1f} |")
            ax.plot(xs, [p["summary"]["s_per_step"] for p in pts], "o-", label="step")
            ax.plot(xs, [p["summary"]["sample"] for p in pts], "s-", label="sample")
            ax.plot(xs, [p["summary"]["train"] for p in pts], "^-", label="train")
            ax.plot(xs, [p["bound"]["sample_s"] for p in pts], "k--", label="sampling bound")
            ax.set_xlabel(key.split(".")[-1])
            ax.set_ylabel("s")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        png = f"benchmarks/results/throughput_scaling_{sc['model']}.png"
        fig.savefig(ROOT / png, dpi=120)
        lines += ["", f"![scaling]({png})", ""]
    for path in sorted(RESULTS.glob("profile_*.json")):
        pr = json.loads(path.read_text())
        m = path.stem.removeprefix("profile_")
        lines += [f"### Where sampling's time goes ({m}, `python benchmarks/throughput.py profile --model {m}`)", "",
                  f"One step's sampling took {pr['sample_s']:.2f} s ({pr['decode_steps']} decode steps) against a bound of "
                  f"{pr['bound']['sample_s']:.2f} s (read {pr['machine']['read_GBps']:.0f} GB/s, bf16 "
                  f"{pr['machine']['matmul_bf16_TFLOPs']:.2f} TFLOP/s, {pr['machine']['threads']} threads, same run). Under the "
                  f"profiler the linear layers took {pr['linear_s']:.2f} s of {pr['profiled_total_s']:.2f} s: they read the "
                  f"weights at {pr['linear_weight_read_GBps']:.1f} GB/s, {pr['machine']['read_GBps'] / pr['linear_weight_read_GBps']:.1f}x "
                  "below what a plain read of memory reaches.", "", "```", pr["table"].rstrip(), "```", ""]
    lines += learning_report(plt)
    lines.append(END)
    bench = ROOT / "BENCHMARKS.md"
    text = bench.read_text()
    section = "\n".join(lines)
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        marker = "## CUDA"
        text = text.replace(marker, section + "\n\n" + marker, 1) if marker in text else text + "\n" + section + "\n"
    bench.write_text(text)
    print("\n".join(lines))


def learning_report(plt) -> list[str]:
    """Held-out avg@8 per evaluation: the published runs (before the speed-ups) against this code's,
    with eager attention in training (``learning/``) and, from an earlier commit, with SDPA (``learning_sdpa/``)."""
    old_dir = ROOT / "benchmarks" / "results" / "learning" / "arith"
    variants = [("before", old_dir), ("after", RESULTS / "learning"), ("after, SDPA training attn", RESULTS / "learning_sdpa")]
    seeds_of = {}
    for name, where in variants[1:]:
        for p in where.glob("*/seed_*.json"):
            seeds_of.setdefault(p.parent.name, set()).add(p.name)
    labels = sorted(seeds_of)
    if not labels:
        return []
    out = ["### Learning with and without the speed-ups (configs/arith.yaml, full 60 steps)", "",
           "Published runs (benchmarks/results/learning/arith, made before this change: `generate` in fp32, SDPA "
           "attention, a separate old-log-prob pass) against runs of this code (KV-cache sampler under bf16 autocast, "
           "single-pass update, IS correction, eager attention in training); `after, SDPA training attn` are runs of "
           "the commit before eager attention became the CPU default. Held-out avg@8 at each evaluation, same seeds; "
           "wall seconds are on a machine loaded differently from run to run.", "",
           "| method | seed | run | " + " | ".join(f"step {s}" for s in range(0, 61, 10)) + " | wall s |",
           "| --- | --- | --- | " + " | ".join("---" for _ in range(0, 61, 10)) + " | --- |"]
    fig, axes = plt.subplots(1, len(labels), figsize=(5.2 * len(labels), 3.4), squeeze=False)
    styles = {"before": ":", "after": "-", "after, SDPA training attn": "--"}
    for ax, label in zip(axes[0], labels):
        for seed_file in sorted(seeds_of[label]):
            for name, where in variants:
                path = where / label / seed_file
                if not path.exists():
                    continue
                res = json.loads(path.read_text())
                curve = [(m["step"], m[res["metric"]]) for m in res["history"] if res["metric"] in m]
                out.append(f"| {label} | {res['seed']} | {name} | " + " | ".join(f"{v:.3f}" for _, v in curve)
                           + f" | {res['wall_seconds']:.0f} |")
                ax.plot(*zip(*curve), ls=styles[name], color=f"C{res['seed']}", label=f"seed {res['seed']} {name}")
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.set_ylabel("eval/avg@8")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(ROOT / "benchmarks" / "results" / "throughput_learning.png", dpi=120)
    out += ["", "| method | runs | seeds | area (mean of the 7 evaluations): mean [min, max] | final avg@8: mean [min, max] |",
            "| --- | --- | --- | --- | --- |"]
    for label in labels:
        areas_by = {}
        for name, where in variants:
            paths = sorted((where / label).glob("seed_*.json"))
            if not paths:
                continue
            curves = [[m[r["metric"]] for m in r["history"] if r["metric"] in m] for r in (json.loads(p.read_text()) for p in paths)]
            areas, finals = [sum(c) / len(c) for c in curves], [c[-1] for c in curves]
            areas_by[name] = areas
            seeds = ", ".join(p.stem.removeprefix("seed_") for p in paths)
            out.append(f"| {label} | {name} | {seeds} | {statistics.mean(areas):.4f} [{min(areas):.4f}, {max(areas):.4f}] | "
                       f"{statistics.mean(finals):.3f} [{min(finals):.3f}, {max(finals):.3f}] |")
        for name in variants[1:]:
            a, b = areas_by.get("before", []), areas_by.get(name[0], [])
            if len(a) > 1 and len(b) > 1:
                t = (statistics.mean(b) - statistics.mean(a)) / (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
                out.append(f"| {label} | {name[0]} - before | | {statistics.mean(b) - statistics.mean(a):+.4f} (Welch t = {t:.2f}) | |")
    return out + ["", "![learning](benchmarks/results/throughput_learning.png)", ""]


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
        report()


if __name__ == "__main__":
    main()

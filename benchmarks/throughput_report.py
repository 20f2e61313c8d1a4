"""The BENCHMARKS.md section and PNGs of benchmarks/throughput.py's results (``throughput.py report``)."""

from __future__ import annotations

import json
import statistics

from throughput import BEGIN, END, ENGINES, RESULTS, ROOT, SWEEPS, sampling_bound


def _engine_rows(model_res: dict) -> dict[str, dict]:
    """engine -> its best round's summary (least disturbed), with every round's s/step."""
    out = {}
    for engine in ENGINES:
        runs = [r for r in model_res["runs"] if r["engine"] == engine]
        best = min(runs, key=lambda r: r["summary"]["s_per_step"])
        out[engine] = {**best["summary"], "rounds": [r["summary"]["s_per_step"] for r in runs]}
    return out


def report() -> None:
    from sgpo.evaluation.report import plt

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

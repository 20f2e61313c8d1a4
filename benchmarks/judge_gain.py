"""The "judge quality -> SGPO gain" table and plot of benchmarks/learning.py (issue 19).

Every judge that SGPO ran with on the default config is put beside its judge-eval F1 on the same
held-out solutions (benchmarks/judge_quality.py -> results/judge_quality/judges.json), its final
and area gain in held-out avg@8 over GRPO (paired by seed, 95% bootstrap interval), and its cost.
"""

from __future__ import annotations

import json
from pathlib import Path

from sgpo.evaluation import curves
from sgpo.evaluation.report import plt

ROOT = Path(__file__).resolve().parent.parent
JUDGES_JSON = ROOT / "benchmarks" / "results" / "judge_quality" / "judges.json"
MC_JSON = ROOT / "benchmarks" / "results" / "judge_quality" / "mc.json"
#: learning label -> what the judge is, in words
JUDGE_NAMES = {
    "sgpo": "exact rule judge", "sgpo_noise0.2": "rule, 20% of verdicts shifted", "sgpo_noise0.4": "rule, 40% shifted",
    "sgpo_trained_rule": "PRM trained on rule labels", "sgpo_trained_mc": "PRM trained on Monte-Carlo labels",
    "sgpo_trained_mc_small": "same, half the rows, 2000 steps",
    "sgpo_mc_online": "Monte-Carlo online (greedy, N=1)", "random": "random (RTS uniform; no judge)",
}


def _cost(runs: dict, f1: dict) -> tuple[str, str]:
    """(judge seconds per RL step, sampled tokens per RL step), mean over seeds.

    Measured ``time/judge`` where the runs logged it; otherwise the judge's held-out latency per
    verdict times the run's verdicts per step (marked ~)."""
    secs, toks, estimated = [], [], False
    for r in runs.values():
        rl = [m for m in r["history"] if "groups/all_negative_frac" in m]
        if not rl:
            continue
        timed = [m["time/judge"] for m in rl if "time/judge" in m]
        if timed:
            secs.append(sum(timed) / len(timed))
        elif f1 and "sgpo/judge_calls_total" in rl[-1]:
            secs.append(f1["latency_s"] * rl[-1]["sgpo/judge_calls_total"] / len(rl))
            estimated = True
        toks.append(rl[-1].get("judge/sampled_tokens", 0) / len(rl))
    s = f"{'~' if estimated else ''}{sum(secs) / len(secs):.2f}" if secs else "–"
    return s, (f"{sum(toks) / len(toks):,.0f}" if toks else "–")


def rows(sets: list[tuple[str, dict, dict, dict]]) -> list[dict]:
    """One record per judge with learning runs: from the first result set (config, per-seed summaries,
    gaps against GRPO, raw results) that has it; gains are paired within that set's warm-up."""
    f1s = json.loads(JUDGES_JSON.read_text()) if JUDGES_JSON.is_file() else {}
    out = []
    for label, name in JUDGE_NAMES.items():
        found = [(c, p, g, r) for c, p, g, r in sets if label in g or (label == "sgpo" and label in p)]
        if not found:
            continue
        config, per, gap, results = found[0]
        if label not in gap:
            continue
        final = lambda lab: {s: r["final_eval_sampled"] for s, r in per.get(lab, {}).items()}  # noqa: E731
        f1 = f1s.get(label, {})
        seeds = [s for s in per[label] if s in per.get("sgpo", {}) and s in per.get("grpo", {})]
        own = sum(final(label)[s] - final("grpo")[s] for s in seeds)
        rule = sum(final("sgpo")[s] - final("grpo")[s] for s in seeds)
        vs_rule = curves.paired_gap(final(label), final("sgpo")) if label != "sgpo" else None
        secs, toks = _cost(results[label], f1.get("policy"))
        out.append({"label": label, "name": name, "seeds": len(results[label]), "config": config, "f1_policy": f1.get("policy", {}).get("f1"),
                    "f1_corrupted": f1.get("corrupted", {}).get("f1"), "final": gap[label]["final_eval_sampled"],
                    "area": gap[label]["area_eval_sampled"], "vs_rule": vs_rule,
                    "share": own / rule if seeds and rule else None, "seconds": secs, "tokens": toks})
    return out


def section(sets: list[tuple[str, dict, dict, dict]], png: Path) -> list[str]:
    """Markdown lines of the table and the plot (``sets``: see :func:`rows`)."""
    recs = rows(sets)
    if not recs:
        return []
    fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    lines = ["### Judge quality → SGPO gain (default config)", "",
             "Judge-eval F1 (ProcessBench: exact first-error index on wrong solutions, -1 on right ones) on the "
             "same held-out solutions for every judge: the warmed-up policy's own samples to 250 test problems "
             "(`policy`, 1000 rows, rule labels), and corrupted reference solutions (`corrupted`, 1000 rows: error "
             "kinds the policy does not make). Gains: held-out avg@8 over GRPO, paired by seed. Cost: judge seconds "
             "per RL step (measured `time/judge`; `~`: held-out latency × verdicts per step) and tokens the judge "
             "sampled per step (the policy generates about 20 000 per step itself). Share: the judge's mean final gain over "
             "the rule judge's, on the seeds both have. `random` is the judge-free control "
             "(its F1 is that of a uniformly drawn index). Warm-up: gains are paired with GRPO runs from the same warm-up; `original` is the "
             "warm-up of the `arith` tables, `rebuilt` the one of `arith_rewarm` (same config and cache key, retrained weights). Made by `python benchmarks/judge_quality.py judges ...` "
             "and `python benchmarks/learning.py`.", "",
             "| judge | warm-up | seeds | F1 policy | F1 corrupted | final gain | area gain | final − rule judge's (paired) "
             "| share of rule judge's final gain | judge s / step | sampled tokens / step |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in recs:
        share = "–" if r["share"] is None else f"{r['share']:.0%}"
        lines.append(f"| {r['name']} (`{r['label']}`) | {'rebuilt' if r['config'] == 'arith_rewarm' else 'original'} | {r['seeds']} | {fmt(r['f1_policy'])} | {fmt(r['f1_corrupted'])} | "
                     f"{curves.fmt_ci(r['final'], '{:+.3f}')} | {curves.fmt_ci(r['area'], '{:+.3f}')} | "
                     f"{'–' if r['vs_rule'] is None else curves.fmt_ci(r['vs_rule'], '{:+.3f}')} | "
                     f"{share} | "
                     f"{r['seconds']} | {r['tokens']} |")
    if MC_JSON.is_file():
        mc = json.loads(MC_JSON.read_text())
        lines += ["", "The Monte-Carlo estimate itself (warmed-up policy, outcome verifier only) on the `policy` held-out set, "
                  "by completion temperature T and completions per probe N (a prefix is right if one of N reaches the answer):", "",
                  "| T | N | F1 | acc. erroneous | acc. correct | sampled tokens per wrong response |", "| --- | --- | --- | --- | --- | --- |"]
        for r in sorted(mc.values(), key=lambda r: (r["temperature"], r["n"])):
            lines.append(f"| {r['temperature']:g} | {r['n']} | {r['f1']:.3f} | {r['acc_erroneous']:.3f} | {r['acc_correct']:.3f} | "
                         f"{r['tokens_per_wrong_response']:.0f} |")
    _plot(recs, png)
    lines += ["", f"![judge quality vs SGPO gain](benchmarks/results/{png.name})", ""]
    return lines


def _plot(recs: list[dict], png: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in recs:
        x = r["f1_policy"] if r["f1_policy"] is not None else 0.0
        m, lo, hi = r["final"]["mean"], r["final"].get("lo", r["final"]["mean"]), r["final"].get("hi", r["final"]["mean"])
        ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt="o", capsize=3)
        ax.annotate(r["label"], (x, m), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("judge-eval F1 on held-out policy solutions")
    ax.set_ylabel("final avg@8 gain over GRPO (95% CI)")
    ax.set_title("judge quality → SGPO gain: default (configs/arith.yaml)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)

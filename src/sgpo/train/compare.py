"""Several methods from one warm-up, same seeds, same prompt order; one report (``sgpo compare``).

Writes ``OUT/<method>/seed_<s>/`` run directories, ``OUT/report.md``, ``OUT/plots/*.png`` and
``OUT/summary.json`` (per method and seed: final and best held-out accuracy, greedy and sampled,
steps to target, mean all-negative share, judge calls, wall seconds).

The headline metric (``--metric``, used for the target and the printed table) defaults to
sampled accuracy, avg@k at the rollout temperature: that is the expected reward the policy
gradient maximises. Greedy accuracy is reported next to it; it can hide what RL changes (a
policy whose most likely step is right but which samples wrong steps often is greedy-perfect).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from sgpo.core import METHODS
from sgpo.errors import ConfigError
from sgpo.evaluation import curves
from sgpo.evaluation.report import CURVES, plot_file_name, plot_methods
from sgpo.files.outputs import write_text_atomic
from sgpo.train.config import Config
from sgpo.train.run_dir import RunDir


def metric_key(metric: str, cfg: Config) -> str:
    """``sampled`` -> ``eval/avg@k`` for the configured k; ``greedy`` -> ``eval/accuracy``."""
    return f"eval/avg@{cfg.train.eval_k}" if metric == "sampled" else "eval/accuracy"


def steps_to(history: list[dict], target: float, key: str = "eval/accuracy") -> int | None:
    """First step whose held-out ``key`` reaches ``target`` (None if it never does)."""
    return next((m["step"] for m in history if m.get(key, -1.0) >= target), None)


def default_target(histories: dict[str, list[list[dict]]], key: str) -> float:
    """Halfway from the mean first evaluation to the best method's mean last one: a level every
    method starts below, so 'steps to target' measures speed rather than the luck of the start."""
    def evals(h: list[dict]) -> list[float]:
        return [m[key] for m in h if key in m]

    firsts = [evals(h)[0] for hs in histories.values() for h in hs if evals(h)]
    finals = [statistics.fmean(evals(h)[-1] for h in hs if evals(h)) for hs in histories.values() if any(map(evals, hs))]
    if not firsts:
        return 0.0
    start = statistics.fmean(firsts)
    return start + 0.5 * max(0.0, max(finals) - start)


def summarize(history: list[dict], target: float, wall: float, sampled_key: str, headline: str) -> dict:
    """One run's numbers: the held-out curve from step 0, its area (mean of the evaluations),
    final and best values, steps to target, the all-negative share, judge calls, wall time."""
    steps, sampled = curves.curve(history, sampled_key)
    greedy = curves.curve(history, "eval/accuracy")[1]
    head_steps, head = curves.curve(history, headline)
    rl = [m for m in history if "groups/all_negative_frac" in m]  # RL steps (not the step-0 evaluation)
    return {
        "curve": {"steps": steps, "sampled": sampled, "greedy": greedy},
        "start_eval_sampled": sampled[0] if steps and steps[0] == 0 else None,
        "final_eval_sampled": sampled[-1] if sampled else None,
        "best_eval_sampled": max(sampled) if sampled else None,
        "area_eval_sampled": curves.area(sampled),
        "start_eval_accuracy": greedy[0] if steps and steps[0] == 0 else None,
        "final_eval_accuracy": greedy[-1] if greedy else None,
        "best_eval_accuracy": max(greedy) if greedy else None,
        "area_eval_accuracy": curves.area(greedy),
        "steps_to_target": curves.steps_to(head_steps, head, target),
        "start_all_negative_frac": rl[0]["groups/all_negative_frac"] if rl else None,
        "mean_all_negative_frac": statistics.fmean(m["groups/all_negative_frac"] for m in rl) if rl else None,
        "judge_calls": history[-1].get("sgpo/judge_calls_total", 0) if history else 0,
        "wall_seconds": wall,
    }


#: Per-run numbers summarised over seeds (mean and 95% bootstrap interval).
OVER_SEEDS = (
    "start_eval_sampled", "final_eval_sampled", "area_eval_sampled", "best_eval_sampled",
    "start_eval_accuracy", "final_eval_accuracy", "area_eval_accuracy", "steps_to_target",
    "start_all_negative_frac", "mean_all_negative_frac", "judge_calls", "wall_seconds",
)


def over_seeds(per_seed: dict[str, dict]) -> dict:
    """Mean with a 95% bootstrap interval of every OVER_SEEDS number, the mean curve with its band,
    and how many seeds never reached the target."""
    runs = list(per_seed.values())
    out = {key: curves.bootstrap([r[key] for r in runs]) for key in OVER_SEEDS}
    out["never_reached_target"] = sum(r["steps_to_target"] is None for r in runs)
    for kind in ("sampled", "greedy"):
        out[f"curve_{kind}"] = curves.band([(r["curve"]["steps"], r["curve"][kind]) for r in runs])
    return out


def gaps(methods: dict[str, dict], baseline: str) -> dict:
    """Every other method against ``baseline``, paired by seed: final, area and per-evaluation gaps
    in sampled accuracy (mean and bootstrap interval), and the first step at which the method's
    mean curve reaches the baseline's mean final value (with the baseline's own step count)."""
    base = methods[baseline]
    base_band = over_seeds(base)["curve_sampled"]
    out = {}
    for method, per_seed in methods.items():
        if method == baseline:
            continue
        g = {key: curves.paired_gap({s: r[key] for s, r in per_seed.items()}, {s: r[key] for s, r in base.items()})
             for key in ("final_eval_sampled", "area_eval_sampled")}
        steps = base_band["steps"]
        at = lambda runs, step: {s: curves.value_at(r["curve"]["steps"], r["curve"]["sampled"], step) for s, r in runs.items()}  # noqa: E731
        g["by_step"] = {str(step): curves.paired_gap(at(per_seed, step), at(base, step)) for step in steps}
        own = over_seeds(per_seed)["curve_sampled"]
        g["baseline_final"] = base_band["mean"][-1] if steps else None
        g["baseline_steps"] = steps[-1] if steps else None
        g["steps_to_baseline_final"] = curves.steps_to(own["steps"], own["mean"], g["baseline_final"]) if steps else None
        out[method] = g
    return out


def write_report(out: Path, summary: dict, histories: dict[str, list[list[dict]]], base: Config) -> Path:
    target, k = summary["target"], base.train.eval_k
    ci = curves.fmt_ci
    rows = [
        f"| method | seeds | start avg@{k} | final avg@{k} | area avg@{k} | final greedy | steps to target "
        "| all-negative at start | all-negative mean | judge calls | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, agg in summary["over_seeds"].items():
        never = agg["never_reached_target"]
        to_target = ci(agg["steps_to_target"], "{:.0f}") + (f" ({never} never)" if never else "")
        rows.append(
            f"| {method} | {len(summary['methods'][method])} | {ci(agg['start_eval_sampled'])} | {ci(agg['final_eval_sampled'])} "
            f"| {ci(agg['area_eval_sampled'])} | {ci(agg['final_eval_accuracy'])} | {to_target} "
            f"| {ci(agg['start_all_negative_frac'], '{:.2f}')} | {ci(agg['mean_all_negative_frac'], '{:.2f}')} "
            f"| {ci(agg['judge_calls'], '{:.0f}')} | {ci(agg['wall_seconds'], '{:.0f}')} |"
        )
    lines = [
        "# sgpo compare",
        "",
        f"Methods {', '.join(summary['methods'])} from one warm-up, seeds {summary['seeds']}, "
        f"{base.train.steps} RL steps of {base.rollout.prompts_per_step} prompts x G={base.rollout.group_size}. "
        f"Values are the mean over seeds with a 95% bootstrap interval in brackets (none for one seed). "
        f"avg@{k}: held-out accuracy of {k} samples per problem at temperature {base.rollout.temperature}, "
        f"evaluated at step 0 (before any update) and every {base.train.eval_every} steps; area: the mean of "
        f"those evaluations; greedy: of the greedy answer. 'Steps to target': first evaluation with "
        f"{summary['metric']} >= {target:.3f}.",
        "",
        *rows,
        "",
    ]
    if summary["gaps"]:
        lines += [f"Against {summary['baseline']}, paired by seed (same warm-up and prompt order):", "",
                  f"| method | final gap | area gap | reaches {summary['baseline']}'s final avg@{k} at step |",
                  "| --- | --- | --- | --- |"]
        for method, g in summary["gaps"].items():
            reach = g["steps_to_baseline_final"]
            lines.append(f"| {method} | {ci(g['final_eval_sampled'], '{:+.3f}')} | {ci(g['area_eval_sampled'], '{:+.3f}')} "
                         f"| {'never' if reach is None else reach} of {g['baseline_steps']} |")
        lines.append("")
    sampled = (f"eval/avg@{k}", f"held-out sampled accuracy (avg@{k})")
    for key, title in (sampled, *CURVES):
        name = plot_file_name(key)
        plot_methods(histories, key, title, out / "plots" / name)
        lines.append(f"![{title}](plots/{name})")
    return write_text_atomic(out / "report.md", "\n".join(lines) + "\n")


#: What a comparison writes into its directory: refused there without ``overwrite``.
COMPARE_FILES = ("summary.json", "report.md", "plots", *METHODS.names())


def compare(
    base: Config, methods: list[str], seeds: list[int], out: str | Path, target: float | None = None,
    metric: str = "sampled", log=print, overwrite: bool = False,
) -> dict:
    """Train every (method, seed) and write report.md and summary.json under ``out``; ``overwrite``
    replaces an earlier comparison there (else that is an error, before any training)."""
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"--methods: unknown method {m!r}; choose from: {', '.join(METHODS.names())}")
    with RunDir(out, overwrite=overwrite, files=COMPARE_FILES, what="--out").open() as run:  # one comparison at a time
        run.clear()
        return _compare(base, methods, seeds, run.path, target, metric, log)


def _compare(base: Config, methods: list[str], seeds: list[int], out: Path, target: float | None, metric: str, log) -> dict:
    from sgpo.train.trainer import Trainer

    histories: dict[str, list[list[dict]]] = {m: [] for m in methods}
    walls: dict[str, list[float]] = {m: [] for m in methods}
    for seed in seeds:
        for method in methods:
            cfg = base.model_copy(deep=True)
            cfg.algorithm.method = method
            cfg.train.seed = seed
            run_dir = out / method / f"seed_{seed}"
            log(f"== {method}, seed {seed} -> {run_dir}")
            t0 = time.perf_counter()
            history = Trainer(cfg, run_dir, log=log, overwrite=True).train()  # a comparison reruns its runs
            walls[method].append(time.perf_counter() - t0)
            histories[method].append(history)
    headline, sampled_key = metric_key(metric, base), metric_key("sampled", base)
    if target is None:
        target = default_target(histories, headline)
    per_method = {
        m: {str(s): summarize(h, target, w, sampled_key, headline) for s, h, w in zip(seeds, histories[m], walls[m])}
        for m in methods
    }
    baseline = "grpo" if "grpo" in methods else methods[0]
    summary = {
        "metric": headline,
        "target": target,
        "seeds": seeds,
        "baseline": baseline,
        "methods": per_method,
        "over_seeds": {m: over_seeds(per_method[m]) for m in methods},
        "gaps": gaps(per_method, baseline),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    report = write_report(out, summary, histories, base)
    log(f"wrote {report} and {out / 'summary.json'}")
    return summary


def default_config_path() -> Path:
    """configs/arith.yaml, shipped inside the package so an installed `sgpo` finds it."""
    return Path(__file__).resolve().parent.parent / "configs" / "arith.yaml"

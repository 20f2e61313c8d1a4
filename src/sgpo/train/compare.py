"""`sgpo compare`: several methods from one warm-up, same seeds, same prompt order; one report.

    sgpo compare [--config FILE] [--methods grpo sgpo ...] [--seeds 1 2 3] [--out DIR] [key=value ...]

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
from sgpo.report import CURVES, plot_file_name, plot_methods
from sgpo.train.config import Config, ConfigError, load_config


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML config (default: the built-in arithmetic default, configs/arith.yaml)")
    parser.add_argument("--methods", nargs="+", default=["grpo", "sgpo"], help="methods to compare (default: grpo sgpo)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (default: train.seed)")
    parser.add_argument("--out", default="runs/compare", help="output directory (default: runs/compare)")
    parser.add_argument(
        "--metric", choices=["sampled", "greedy"], default="sampled",
        help="headline held-out metric: sampled (eval/avg@k, default) or greedy (eval/accuracy)",
    )
    parser.add_argument(
        "--target", type=float, default=None,
        help="headline accuracy for 'steps to target' (default: the mean start value plus half the best mean gain)",
    )
    parser.add_argument("overrides", nargs="*", help="dotted overrides applied to every run, e.g. train.steps=50")


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
    evals = [m["eval/accuracy"] for m in history if "eval/accuracy" in m]
    sampled = [m[sampled_key] for m in history if sampled_key in m]
    return {
        "final_eval_accuracy": evals[-1] if evals else None,
        "best_eval_accuracy": max(evals) if evals else None,
        "final_eval_sampled": sampled[-1] if sampled else None,
        "best_eval_sampled": max(sampled) if sampled else None,
        "steps_to_target": steps_to(history, target, headline),
        "mean_all_negative_frac": statistics.fmean(m["groups/all_negative_frac"] for m in history) if history else None,
        "judge_calls": history[-1].get("sgpo/judge_calls_total", 0) if history else 0,
        "wall_seconds": wall,
    }


def _mean_spread(values: list[float | None], fmt: str = "{:.3f}") -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        text = fmt.format(vals[0])
    else:
        text = f"{fmt.format(statistics.fmean(vals))} ± {fmt.format(statistics.stdev(vals))}"
    missing = len(values) - len(vals)
    return text + (f" ({missing} never)" if missing else "")


def write_report(out: Path, summary: dict, histories: dict[str, list[list[dict]]], base: Config) -> Path:
    target, k = summary["target"], base.train.eval_k
    rows = [
        f"| method | final avg@{k} | best avg@{k} | final greedy | best greedy | steps to target "
        "| all-negative share | judge calls | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, per_seed in summary["methods"].items():
        runs = list(per_seed.values())
        col = lambda key, fmt="{:.3f}": _mean_spread([r[key] for r in runs], fmt)  # noqa: E731
        rows.append(
            f"| {method} | {col('final_eval_sampled')} | {col('best_eval_sampled')} | {col('final_eval_accuracy')} "
            f"| {col('best_eval_accuracy')} | {col('steps_to_target', '{:.0f}')} "
            f"| {col('mean_all_negative_frac')} | {col('judge_calls', '{:.0f}')} | {col('wall_seconds', '{:.0f}')} |"
        )
    start = {m: h[0][0].get("groups/all_negative_frac") for m, h in histories.items() if h and h[0]}
    lines = [
        "# sgpo compare",
        "",
        f"Methods {', '.join(summary['methods'])} from one warm-up, seeds {summary['seeds']}, "
        f"{base.train.steps} RL steps of {base.rollout.prompts_per_step} prompts x G={base.rollout.group_size}. "
        f"Values are mean ± std over seeds. avg@{k}: held-out accuracy of {k} samples per problem at "
        f"temperature {base.rollout.temperature}; greedy: of the greedy answer. 'Steps to target': first "
        f"evaluation with {summary['metric']} >= {target:.3f}.",
        "",
        f"All-negative share at the first RL step: {', '.join(f'{m} {v:.2f}' for m, v in start.items())}.",
        "",
        *rows,
        "",
    ]
    sampled = (f"eval/avg@{k}", f"held-out sampled accuracy (avg@{k})")
    for key, title in (sampled, *CURVES):
        name = plot_file_name(key)
        plot_methods(histories, key, title, out / "plots" / name)
        lines.append(f"![{title}](plots/{name})")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def compare(
    base: Config, methods: list[str], seeds: list[int], out: str | Path, target: float | None = None,
    metric: str = "sampled", log=print,
) -> dict:
    """Train every (method, seed) and write report.md and summary.json under ``out``."""
    from sgpo.train.trainer import Trainer

    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"--methods: unknown method {m!r}; choose from: {', '.join(METHODS.names())}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    summary = {
        "metric": headline,
        "target": target,
        "seeds": seeds,
        "methods": {
            m: {str(s): summarize(h, target, w, sampled_key, headline) for s, h, w in zip(seeds, histories[m], walls[m])}
            for m in methods
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report = write_report(out, summary, histories, base)
    log(f"wrote {report} and {out / 'summary.json'}")
    return summary


def default_config_path() -> Path:
    """configs/arith.yaml, shipped inside the package so an installed `sgpo` finds it."""
    return Path(__file__).resolve().parent.parent / "configs" / "arith.yaml"


def run(args) -> int:
    cfg = load_config(args.config or default_config_path(), args.overrides)
    seeds = args.seeds or [cfg.train.seed]
    summary = compare(cfg, args.methods, seeds, args.out, args.target, args.metric)
    final = "final_eval_sampled" if args.metric == "sampled" else "final_eval_accuracy"
    print(f"\n{'method':<8} {'final ' + summary['metric']:>20} {'steps to target':>16}")
    for method, per_seed in summary["methods"].items():
        runs = list(per_seed.values())
        print(f"{method:<8} {_mean_spread([r[final] for r in runs]):>20} "
              f"{_mean_spread([r['steps_to_target'] for r in runs], '{:.0f}'):>16}")
    return 0

"""Plots and markdown reports for a single run and for a comparison of methods."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: (metric, title) of the curves every report plots.
CURVES = (
    ("eval/accuracy", "held-out greedy accuracy"),
    ("accuracy/train", "training accuracy (sampled)"),
    ("groups/all_negative_frac", "share of all-negative groups"),
    ("sgpo/recovered_groups_frac", "all-negative groups with a learning signal"),
)


def series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(m["step"], m[key]) for m in history if key in m]
    return [s for s, _ in points], [v for _, v in points]


def plot_methods(runs: dict[str, list[list[dict]]], key: str, title: str, path: Path) -> None:
    """One line per method (mean over seeds, band = min..max), shared axes."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for method, histories in runs.items():
        curves = [series(h, key) for h in histories]
        curves = [c for c in curves if c[0]]
        if not curves:
            continue
        n = min(len(c[0]) for c in curves)
        steps = curves[0][0][:n]
        values = [[c[1][i] for c in curves] for i in range(n)]
        ax.plot(steps, [statistics.fmean(v) for v in values], label=method)
        if len(curves) > 1:
            ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_file_name(key: str) -> str:
    return key.replace("/", "_").replace("@", "at") + ".png"


def write_run_report(run_dir: Path, history: list[dict]) -> Path:
    """report.md and plots/*.png for one training run."""
    run_dir = Path(run_dir)
    method = run_dir.name
    lines = [f"# Run report: {run_dir}", ""]
    last = history[-1] if history else {}
    evals = [m["eval/accuracy"] for m in history if "eval/accuracy" in m]
    lines += [
        f"- steps: {last.get('step', 0)}",
        f"- final eval accuracy: {evals[-1]:.3f}" if evals else "- no evaluation yet",
        f"- best eval accuracy: {max(evals):.3f}" if evals else "",
        f"- mean all-negative share: {statistics.fmean(m['groups/all_negative_frac'] for m in history):.3f}" if history else "",
        f"- judge calls: {last.get('sgpo/judge_calls_total', 0)}",
        f"- seconds per step: {statistics.fmean(m['time/step'] for m in history):.2f}" if history else "",
        "",
    ]
    for key, title in CURVES:
        name = plot_file_name(key)
        plot_methods({method: [history]}, key, title, run_dir / "plots" / name)
        lines.append(f"![{title}](plots/{name})")
    path = run_dir / "report.md"
    path.write_text("\n".join(line for line in lines if line is not None) + "\n")
    return path

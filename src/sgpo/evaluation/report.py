"""Plots and markdown reports for a single run and for a comparison of methods."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

from sgpo.evaluation.curves import band, curve
from sgpo.files.outputs import write_text_atomic

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
    return curve(history, key)


def plot_methods(runs: dict[str, list[list[dict]]], key: str, title: str, path: Path) -> None:
    """One line per method: the mean over seeds, and with two or more seeds a band for the 95%
    bootstrap interval of that mean (sgpo.evaluation.curves.band); shared axes."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for method, histories in runs.items():
        b = band([curve(h, key) for h in histories])
        if not b["steps"]:
            continue
        (line,) = ax.plot(b["steps"], b["mean"], label=f"{method} (n={len(histories)})" if len(histories) > 1 else method)
        if len(histories) > 1:
            ax.fill_between(b["steps"], b["lo"], b["hi"], alpha=0.2, color=line.get_color())
    ax.set_xlabel("RL step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_lines():  # a run stopped before its first logged value has nothing to label
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_file_name(key: str) -> str:
    return key.replace("/", "_").replace("@", "at") + ".png"


def judge_failure_lines(history: list[dict], warn_frac: float) -> list[str]:
    """The report's warning for steps whose judge failed on at least ``warn_frac`` of the judged
    responses (``judge.warn_failure_frac``): those trained as plain GRPO, whatever the method says."""
    bad = [(m["step"], m["sgpo/judge_failures"] / m["sgpo/judged_responses"]) for m in history
           if m.get("sgpo/judged_responses") and m.get("sgpo/judge_failures", 0) >= warn_frac * m["sgpo/judged_responses"]]
    if not bad:
        return []
    shown = ", ".join(f"{step} ({share:.0%})" for step, share in bad[:20]) + (", ..." if len(bad) > 20 else "")
    return [f"- **WARNING: the judge failed on at least {warn_frac:.0%} of the judged responses in {len(bad)} of "
            f"{sum('time/step' in m for m in history)} steps**; those responses got no SGPO signal (plain GRPO). "
            f"Steps (failed share): {shown}"]


def write_run_report(run_dir: Path, history: list[dict], judge_warn_frac: float = 0.5) -> Path:
    """report.md and plots/*.png for one training run."""
    run_dir = Path(run_dir)
    method = run_dir.name
    lines = [f"# Run report: {run_dir}", ""]
    last = history[-1] if history else {}
    steps = [m for m in history if "time/step" in m]  # RL steps; the step-0 row is an evaluation only
    evals = [m["eval/accuracy"] for m in history if "eval/accuracy" in m]
    lines += [
        f"- steps: {last.get('step', 0)}",
        f"- final eval accuracy: {evals[-1]:.3f}" if evals else "- no evaluation yet",
        f"- best eval accuracy: {max(evals):.3f}" if evals else "",
        f"- mean all-negative share: {statistics.fmean(m['groups/all_negative_frac'] for m in steps):.3f}" if steps else "",
        f"- judge calls: {last.get('sgpo/judge_calls_total', 0)}",
        f"- seconds per step: {statistics.fmean(m['time/step'] for m in steps):.2f}" if steps else "",
        *judge_failure_lines(history, judge_warn_frac),
        "",
    ]
    for key, title in CURVES:
        name = plot_file_name(key)
        plot_methods({method: [history]}, key, title, run_dir / "plots" / name)
        lines.append(f"![{title}](plots/{name})")
    return write_text_atomic(run_dir / "report.md", "\n".join(line for line in lines if line is not None) + "\n")

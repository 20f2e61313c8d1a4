"""`sgpo analyze ROLLOUTS`: what GRPO and SGPO would learn from a rollouts file, before training on it.

    sgpo analyze rollouts.jsonl [--out DIR] [--scope all_negative] [--mapping logistic] [--beta 5] ...

It reports the share of all-negative, all-positive and mixed groups; the judge's verdicts
(status counts, where the first error falls, the RTS); and the rewards and advantages GRPO and
SGPO would assign, through the same grading step the trainer uses (``sgpo.grading.shape``): how many all-negative
groups SGPO recovers (gives a non-zero advantage) and the mean |advantage| per group kind.
Responses in SGPO's scope without a usable stored verdict have an unknown reward here (advantage 0,
out of their group's statistics), as a failed verdict has in training. With ``--out`` it writes ``report.md``, ``summary.json`` and ``plots/*.png``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from sgpo.core import ShapingParams, classify_groups, is_correct, judge_mask, rts_from_steps
from sgpo.files.outputs import write_text_atomic
from sgpo.grading import GradingSettings, shape, usable
from sgpo.rollouts.file import RolloutsFile

KINDS = ("all_negative", "mixed", "all_positive")
RTS_BINS = 10


def _mean(x: torch.Tensor) -> float | None:
    return x.float().mean().item() if x.numel() else None


def analyze(rf: RolloutsFile, params: ShapingParams = ShapingParams()) -> dict:
    """The numbers of the report, as a JSON-ready dict (see the module docstring)."""
    G, N = rf.group_size, len(rf.groups)
    records = rf.records()
    outcomes = torch.tensor([r.outcome for r in records]).view(N, G)
    kinds = classify_groups(outcomes)
    verdicts = [r.verdict for r in records]
    ok = torch.tensor([usable(v) for v in verdicts]).view(N, G)
    has = torch.tensor([v is not None for v in verdicts]).view(N, G)
    first = torch.tensor([v.first_error if v is not None else -1 for v in verdicts]).view(N, G)
    n_steps = torch.tensor([v.n_steps if v is not None else 0 for v in verdicts]).view(N, G)
    rts = torch.where(ok, rts_from_steps(first, n_steps), torch.zeros(N, G))
    scope = judge_mask(outcomes, params.scope)
    wrong = ~is_correct(outcomes)
    shaped = {m: shape(outcomes, rts, ok, GradingSettings(m, params)) for m in ("grpo", "sgpo")}
    kind_masks = {k: getattr(kinds, k) for k in KINDS}
    out: dict = {
        "file": str(rf.path),
        "groups": N,
        "group_size": G,
        "responses": N * G,
        "accuracy": _mean(outcomes),
        "skipped_lines": rf.skipped_lines,
        "dropped_groups": rf.dropped_groups,
        "group_kinds": {k: {"count": int(m.sum()), "share": _mean(m)} for k, m in kind_masks.items()},
        "params": {"scope": params.scope, "mapping": params.mapping, "mapping_params": dict(params.mapping_params),
                   "advantage_scale": params.scale},
    }
    out["verdicts"] = dict(Counter(v.status if v is not None else "not judged" for v in verdicts))
    out["scope"] = {
        "responses": int(scope.sum()),
        "usable_verdict": int((scope & ok).sum()),
        "failed_verdict": int((scope & has & ~ok).sum()),
        "missing_verdict": int((scope & ~has).sum()),
    }
    graded = (ok & wrong).reshape(-1)
    fe = Counter(int(k) for k in first.reshape(-1)[graded])
    out["first_error"] = {str(k): fe[k] for k in sorted(fe)}
    hist = torch.histc(rts.reshape(-1)[graded], bins=RTS_BINS, min=0.0, max=1.0) if graded.any() else torch.zeros(RTS_BINS)
    out["rts"] = {"mean": _mean(rts.reshape(-1)[graded]), "bins": [round(i / RTS_BINS, 2) for i in range(RTS_BINS + 1)],
                  "counts": [int(c) for c in hist]}
    out["methods"] = {}
    for name, s in shaped.items():
        signal = (s.advantages.abs() > 0).any(dim=1) & s.keep
        per_kind = {}
        for k, m in kind_masks.items():
            per_kind[k] = {
                "mean_reward": _mean(s.rewards[m]),
                "mean_abs_advantage": _mean(s.advantages[m].abs()),
                "groups_with_signal": int((signal & m).sum()),
            }
        out["methods"][name] = {
            "mean_reward": _mean(s.rewards),
            "groups_with_signal": int(signal.sum()),
            "groups_with_signal_share": _mean(signal),
            "responses_with_nonzero_advantage": int((s.advantages != 0).sum()),
            "by_kind": per_kind,
        }
    n_neg = out["group_kinds"]["all_negative"]["count"]
    recovered = out["methods"]["sgpo"]["by_kind"]["all_negative"]["groups_with_signal"]
    out["sgpo_recovered"] = {"groups": recovered, "of_all_negative": recovered / n_neg if n_neg else None}
    out["sgpo_advantages_all_negative"] = shaped["sgpo"].advantages[kinds.all_negative].reshape(-1).tolist()
    return out


# -- rendering -----------------------------------------------------------------------------------


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(a: dict) -> list[list[str]]:
    """Rows of the main table: per group kind, count, share and what each method makes of it."""
    head = ["group kind", "groups", "share", "GRPO mean r", "SGPO mean r", "GRPO mean |A|", "SGPO mean |A|",
            "GRPO groups w/ signal", "SGPO groups w/ signal"]
    rows = [head]
    g, s = a["methods"]["grpo"], a["methods"]["sgpo"]
    for k in KINDS:
        gk, sk, kk = g["by_kind"][k], s["by_kind"][k], a["group_kinds"][k]
        rows.append([k.replace("_", "-"), str(kk["count"]), _f(kk["share"]), _f(gk["mean_reward"]), _f(sk["mean_reward"]),
                     _f(gk["mean_abs_advantage"]), _f(sk["mean_abs_advantage"]),
                     str(gk["groups_with_signal"]), str(sk["groups_with_signal"])])
    rows.append(["all", str(a["groups"]), "1.000", _f(g["mean_reward"]), _f(s["mean_reward"]), "", "",
                 str(g["groups_with_signal"]), str(s["groups_with_signal"])])
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def _md_table(rows: list[list[str]]) -> str:
    cells = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])


def summary_lines(a: dict) -> list[str]:
    p = a["params"]
    mapping = " ".join([p["mapping"], *(f"{k}={v:g}" for k, v in p["mapping_params"].items())])
    rec = a["sgpo_recovered"]
    sc = a["scope"]
    lines = [
        f"{a['groups']} groups x {a['group_size']} responses, accuracy {_f(a['accuracy'])}",
        "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(a["verdicts"].items()) if v),
        f"SGPO scope {p['scope']}: {sc['responses']} responses, {sc['usable_verdict']} with a usable verdict, "
        f"{sc['failed_verdict']} failed, {sc['missing_verdict']} not judged"
        + (" (offline training would ask the configured judge about these)" if sc["missing_verdict"] else ""),
        f"SGPO ({mapping}, advantage scale {p['advantage_scale']}) recovers {rec['groups']} of "
        f"{a['group_kinds']['all_negative']['count']} all-negative groups"
        + (f" ({100 * rec['of_all_negative']:.0f}%)" if rec["of_all_negative"] is not None else "")
        + f"; groups with a learning signal: GRPO {a['methods']['grpo']['groups_with_signal']}, "
        f"SGPO {a['methods']['sgpo']['groups_with_signal']} of {a['groups']}",
        f"mean RTS of judged wrong responses: {_f(a['rts']['mean'])}",
    ]
    if a["skipped_lines"] or a["dropped_groups"]:
        lines.append(f"file cut short: {a['skipped_lines']} incomplete line(s) skipped, {a['dropped_groups']} incomplete group(s) dropped")
    return lines


def plot(a: dict, out: Path) -> list[str]:
    """PNG histograms under ``out``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar([k.replace("_", "-") for k in KINDS], [a["group_kinds"][k]["count"] for k in KINDS], color=["#c44", "#888", "#4a4"])
    ax.set_ylabel("groups")
    ax.set_title("group kinds")
    save(fig, "group_kinds.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    keys = list(a["first_error"])
    ax.bar([("none" if k == "-1" else k) for k in keys], [a["first_error"][k] for k in keys])
    ax.set_xlabel("first incorrect step (0-based; none = no error found)")
    ax.set_ylabel("wrong responses")
    ax.set_title("where the judge finds the first error")
    save(fig, "first_error.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = a["rts"]["bins"]
    ax.bar(bins[:-1], a["rts"]["counts"], width=1 / RTS_BINS, align="edge", edgecolor="white")
    ax.set_xlim(0, 1)
    ax.set_xlabel("RTS (share of steps before the first error)")
    ax.set_ylabel("wrong responses")
    ax.set_title("reasoning trajectory score")
    save(fig, "rts.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    adv = a["sgpo_advantages_all_negative"]
    ax.hist(adv if adv else [0.0], bins=20)
    ax.set_xlabel("SGPO advantage (GRPO: all 0)")
    ax.set_ylabel("responses")
    ax.set_title("advantages in all-negative groups")
    save(fig, "advantages_all_negative.png")
    return names


#: What :func:`write_report` writes into its directory.
REPORT_FILES = ("report.md", "summary.json", "plots")


def write_report(a: dict, out: Path) -> Path:
    """report.md, summary.json and plots/*.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = plot(a, out / "plots")
    summary = {k: v for k, v in a.items() if k != "sgpo_advantages_all_negative"}
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    lines = [f"# Rollouts analysis: {a['file']}", "", *[f"- {line}" for line in summary_lines(a)], "",
             "## Groups and what each method makes of them", "", _md_table(table(a)), "",
             "A group has a learning signal when some response in it gets a non-zero advantage.", "",
             "## Verdicts", "", _md_table([["status", "responses"], *[[k, str(v)] for k, v in sorted(a["verdicts"].items())]]), "",
             "First incorrect step of judged wrong responses (-1: the judge found no error):", "",
             _md_table([["first error", "responses"], *[[k, str(v)] for k, v in a["first_error"].items()]]), "",
             "## Plots", ""]
    lines += [f"![{name}](plots/{name})" for name in plots]
    return write_text_atomic(out / "report.md", "\n".join(lines) + "\n")

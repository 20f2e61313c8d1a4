"""How well do step judges find the earliest wrong step? (``sgpo judge-eval``)

Data is ProcessBench format (see :mod:`sgpo.judges.data`). Metrics, as in ProcessBench:

- ``acc_erroneous``: share of rows with an error where the judge names exactly that step;
- ``acc_correct``: share of all-correct rows where the judge finds no error (-1);
- ``f1``: their harmonic mean (0 when either is 0, so every trivial baseline scores 0);
plus ``exact`` (exact index over all rows), ``mean_distance`` (|predicted - true| position over
usable verdicts, -1 counted as the position after the last step), ``failures`` (verdicts that are
not ``ok``; they count as wrong above) and ``latency_s`` (judge wall time per verdict, model
loading excluded, requests sent in batches of ``--batch-size``).
"""

from __future__ import annotations

import time
from pathlib import Path

from sgpo.errors import ConfigError
from sgpo.judges.base import ERROR, JudgeRequest, StepJudge, Verdict
from sgpo.judges.baselines import BASELINES, ConstantJudge
from sgpo.judges.data import LabelledSolution, read_processbench
from sgpo.judges.stats import collect_stats


def _position(index: int, n_steps: int) -> int:
    return n_steps if index < 0 else index


def compute_metrics(rows: list[LabelledSolution], verdicts: list[Verdict], seconds: float) -> dict:
    """ProcessBench metrics of ``verdicts`` against ``rows`` (same order)."""
    def acc(pairs):
        return sum(v.ok and v.first_error == r.label for r, v in pairs) / len(pairs) if pairs else float("nan")

    pairs = list(zip(rows, verdicts))
    erroneous = [(r, v) for r, v in pairs if r.label >= 0]
    correct = [(r, v) for r, v in pairs if r.label < 0]
    a_err, a_cor = acc(erroneous), acc(correct)
    f1 = 2 * a_err * a_cor / (a_err + a_cor) if a_err + a_cor > 0 else 0.0
    usable = [(r, v) for r, v in pairs if v.ok]
    dist = [abs(_position(v.first_error, len(r.steps)) - _position(r.label, len(r.steps))) for r, v in usable]
    failures: dict[str, int] = {}
    for v in verdicts:
        if not v.ok:
            failures[v.status] = failures.get(v.status, 0) + 1
    return {
        "rows": len(rows), "erroneous_rows": len(erroneous), "correct_rows": len(correct),
        "f1": f1, "acc_erroneous": a_err, "acc_correct": a_cor, "exact": acc(pairs),
        "mean_distance": sum(dist) / len(dist) if dist else float("nan"),
        "failures": sum(failures.values()), "failures_by_status": failures,
        "latency_s": seconds / len(rows) if rows else 0.0, "seconds": seconds,
    }


def resolve_judge(spec: str, task=None, cache: bool | None = False) -> tuple[str, StepJudge]:
    """(display name, judge) for a ``--judge`` value.

    ``first`` / ``last`` / ``none``: a baseline; ``rule`` / ``llm_http`` / ``llm_local`` / ``prm``:
    that kind with default settings; a ``.yaml``/``.json`` file: a judge config; a directory: a
    PRM or trained judge in it. ``LABEL=SPEC`` names the column ``LABEL``. ``cache`` overrides
    the config's cache setting (off for evaluation, so latency is the judge's own); None keeps it.
    """
    from sgpo.judges.config import JUDGE_KINDS, JudgeConfig, build_judge, load_judge_config

    label, _, rest = spec.partition("=")
    if rest and not Path(spec).exists():
        name, spec = label, rest
    else:
        name = spec
    if spec in BASELINES:
        return name, ConstantJudge(spec)
    def build(cfg: JudgeConfig) -> StepJudge:
        return build_judge(cfg if cache is None else cfg.model_copy(update={"cache": cache}), task)

    if spec == "rollout":  # its verdicts come from the policy being trained; judge-eval has none to give it
        raise ConfigError("--judge rollout needs a policy to sample from; measure it with "
                          "benchmarks/judge_quality.py mc, or evaluate a judge trained on its labels")
    if spec in JUDGE_KINDS:
        return name, build(JudgeConfig(kind=spec))
    path = Path(spec)
    if path.is_dir():
        return (path.name if name == spec else name), build(JudgeConfig(kind="prm", prm={"model": str(path)}))
    if path.is_file():
        return (path.stem if name == spec else name), build(load_judge_config(path))
    raise ValueError(f"--judge {spec!r}: not a baseline ({', '.join(BASELINES)}), a judge kind ({', '.join(JUDGE_KINDS)}), "
                     "a judge config file or a model directory")


def preload(judge: StepJudge) -> None:
    """Load lazily loaded models now, through the wrappers, so latency excludes loading.

    A model that fails to load is left alone: the judge reports that as failed verdicts.
    """
    node, seen = judge, set()
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if callable(getattr(node, "load", None)):
            try:
                node.load()
            except Exception:  # noqa: BLE001
                pass
        node = getattr(node, "inner", None)


def run_judge(judge: StepJudge, rows: list[LabelledSolution], batch_size: int = 32, use_reference: bool = True) -> tuple[list[Verdict], float]:
    """Verdicts for all rows (in batches) and the judge's wall time (model loading excluded)."""
    preload(judge)
    verdicts: list[Verdict] = []
    seconds = 0.0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        requests = [JudgeRequest(r.problem, r.steps, r.reference if use_reference else None) for r in chunk]
        t0 = time.perf_counter()
        try:
            verdicts.extend(judge.judge(requests))
        except Exception as e:  # noqa: BLE001 - a broken judge scores its failures, it does not stop the table
            verdicts.extend(Verdict.failed(len(r.steps), ERROR, raw=f"{type(e).__name__}: {e}") for r in chunk)
        seconds += time.perf_counter() - t0
    return verdicts, seconds


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x != x else f"{x:.{digits}f}"  # NaN: no such rows


def markdown_table(results: list[dict]) -> str:
    """One row per judge, best F1 first in the order given."""
    head = "| judge | F1 | acc. erroneous | acc. correct | exact | mean dist. | failures | s / verdict |\n|---|---|---|---|---|---|---|---|"
    lines = [
        f"| {r['judge']} | {_fmt(r['f1'])} | {_fmt(r['acc_erroneous'])} | {_fmt(r['acc_correct'])} | {_fmt(r['exact'])} "
        f"| {_fmt(r['mean_distance'], 2)} | {r['failures']} | {r['latency_s']:.2g} |"
        for r in results
    ]
    return "\n".join([head, *lines])


def evaluate(path: str | Path, specs: list[str], batch_size: int = 32, use_reference: bool = True, limit: int | None = None,
             log=print) -> tuple[list[dict], dict[str, list[Verdict]]]:
    """Evaluate each judge spec on the file. Every judge is built before any is run, so a spec that
    names no judge is a ConfigError before any work (models still load lazily, on first use)."""
    from sgpo.tasks.arith import ArithTask

    rows = read_processbench(path)[:limit]
    judges = []
    for spec in specs:
        try:
            judges.append((spec, *resolve_judge(spec, ArithTask())))
        except ValueError as e:
            raise ConfigError(str(e) if str(e).startswith("--judge") else f"--judge {spec!r}: {e}") from None
    results, all_verdicts = [], {}
    for spec, name, judge in judges:
        verdicts, seconds = run_judge(judge, rows, batch_size, use_reference)
        metrics = {"judge": name, "spec": spec, **compute_metrics(rows, verdicts, seconds), "stats": collect_stats(judge)}
        results.append(metrics)
        all_verdicts[name] = verdicts
        log(f"{name}: F1 {_fmt(metrics['f1'])}, {metrics['failures']} failures, {metrics['latency_s']:.2g} s/verdict")
    return results, all_verdicts

"""Step labels without a rule judge: Monte-Carlo estimates from the policy (``sgpo train-judge --labels rollout``),
and the generated data of a training config (``sgpo train-judge --config FILE``).

:func:`mc_relabel` replaces each row's label by the Monte-Carlo first-error estimate
(:mod:`sgpo.judges.montecarlo`): only the outcome verifier and the policy's completions are used.
The rows keep the step-labelled format, so any PRM trains on them and ``--data`` reads them back.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from sgpo.judges.base import JudgeRequest
from sgpo.judges.data import LabelledSolution


def mc_relabel(rows: list[LabelledSolution], judge, answer_of: Callable[[LabelledSolution], str | None],
               chunk: int = 512, log=print) -> tuple[list[LabelledSolution], dict]:
    """``rows`` with Monte-Carlo labels, and what labelling cost.

    Args:
        rows: step-labelled solutions (their labels are ignored and replaced).
        judge: a bound :class:`sgpo.judges.montecarlo.RolloutJudge`.
        answer_of: a row's reference final answer (what the outcome verifier compares with).

    Returns:
        (relabelled rows, {"rows", "dropped", "sampled_tokens", "completions", "seconds", "agreement"}):
        rows whose estimate failed (no steps, budget exhausted) are dropped; ``agreement`` is the
        share of kept rows whose new label equals the old one (against rule labels: the estimate's
        exact-index accuracy).
    """
    out, same, start = [], 0, time.perf_counter()
    tokens0, completions0 = judge.sampled_tokens, judge.completions
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        requests = [JudgeRequest(r.problem, r.steps, r.reference, answer_of(r)) for r in part]
        for row, verdict in zip(part, judge.judge(requests)):
            if verdict.ok:
                out.append(replace(row, label=verdict.first_error))
                same += verdict.first_error == row.label
        log(f"mc labels: {min(i + chunk, len(rows))}/{len(rows)} rows, {judge.sampled_tokens - tokens0} tokens sampled")
    cost = {"rows": len(out), "dropped": len(rows) - len(out), "sampled_tokens": judge.sampled_tokens - tokens0,
            "completions": judge.completions - completions0, "seconds": round(time.perf_counter() - start, 1),
            "agreement": same / max(1, len(out))}
    return out, cost


def arith_answer(row: LabelledSolution) -> str:
    """The final value of an arithmetic problem's chain of operations."""
    from sgpo.tasks.arith import Chain

    return str(Chain.parse(row.problem).values()[-1])


def config_data(config_path: str | None, n: int, seed: int, labels: str, mc_n: int, mc_temperature: float,
                log=print) -> tuple[dict[str, list[LabelledSolution]], object, dict]:
    """Train / validation / test rows from the warmed-up policy of a training config (default
    ``configs/arith.yaml``): its own samples to problems of its task, chunks cycling through its
    rollout temperature, 1.0 and 0.7 (wrong solutions of every kind it makes, and right ones).

    ``labels``: ``rule`` (the task's exact judge) or ``rollout`` (Monte-Carlo estimates with the same
    policy, ``mc_n`` completions per probe at ``mc_temperature``) for the train and validation rows;
    the test rows keep rule labels, so the judge is scored against the truth either way.
    Returns (splits, the config's policy as (cfg, model, tokenizer, prompt), labelling cost).
    """
    from sgpo.judge_training.arith_data import config_policy, sampled_rows

    policy = cfg, model, tokenizer, prompt = config_policy(config_path, log)
    temps = (cfg.rollout.temperature, 1.0, 0.7)
    sizes = {"train": n, "validation": max(200, n // 10), "test": max(400, n // 10)}
    data = {split: sampled_rows(cfg, model, tokenizer, prompt, -(-size // 4), 4, split, temps, seed + k, f"policy{seed}")[:size]
            for k, (split, size) in enumerate(sizes.items())}
    for split, rows in data.items():
        log(f"data: {len(rows)} {split} rows ({sum(r.label < 0 for r in rows)} right all through), rule-labelled")
    cost: dict = {}
    if labels == "rollout":
        judge = mc_judge(cfg, model, tokenizer, prompt, mc_n, mc_temperature, seed)
        for split in ("train", "validation"):
            data[split], cost[split] = mc_relabel(data[split], judge, arith_answer, log=log)
            log(f"data: {split} relabelled by Monte-Carlo (N={mc_n}, T={mc_temperature}): {cost[split]}")
    return data, policy, cost


def mc_judge(cfg, model, tokenizer, prompt, n: int, temperature: float, seed: int = 0):
    """A :class:`RolloutJudge` bound to ``model`` sampling as the trainer does under ``cfg``."""
    from sgpo.judges.montecarlo import RolloutJudge, task_verifier
    from sgpo.train.prefix_sampler import PolicyPrefixSampler
    from sgpo.train.runtime import sampling_precision, task_for

    judge = RolloutJudge(task_verifier(task_for(cfg)), n=n, seed=seed)
    device = next(model.parameters()).device
    judge.bind(PolicyPrefixSampler(model, tokenizer, prompt, cfg.rollout.max_new_tokens, temperature, cfg.rollout.top_p,
                                   sampler=cfg.rollout.sampler, seed=seed, precision=lambda: sampling_precision(cfg, model, device)))
    return judge

"""Judge quality on the default task: held-out solutions, Monte-Carlo F1 by N, every judge's judge-eval F1.

    python benchmarks/judge_quality.py heldout     # the held-out sets (policy samples, corrupted references)
    python benchmarks/judge_quality.py mc          # the Monte-Carlo estimate's F1 by temperature and N
    python benchmarks/judge_quality.py judges [--trained LABEL=DIR ...]   # every judge's F1 on both sets

Held-out solutions are the default config's (configs/arith.yaml) warmed-up policy's own samples at
its rollout temperature on test-split problems (what SGPO's judge sees in training), labelled by the
rule judge; and, made another way, corrupted reference solutions (other error kinds: wrong operand,
operator, skipped operation, local slips, wrong answer line). Results go to
``benchmarks/results/judge_quality/*.json``; benchmarks/learning.py puts them beside the SGPO gains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "judge_quality"
HELDOUT = {"policy": OUT / "heldout_policy.jsonl", "corrupted": OUT / "heldout_corrupted.jsonl"}
log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731


def make_heldout(n_problems: int = 250) -> None:
    from sgpo.files.rows import write_jsonl
    from sgpo.judge_training.arith_data import config_policy, corrupted_rows_for, sampled_rows

    cfg, model, tok, prompt = config_policy(log=log)
    # Half the chunks at the rollout temperature (the wrong solutions SGPO judges), half at 0.7 so that
    # about a third of the rows are right all through: F1 needs both kinds.
    rows = sampled_rows(cfg, model, tok, prompt, n_problems, 4, "test", (cfg.rollout.temperature, 0.7), seed=12345, uid="heldout")
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(HELDOUT["policy"], (r.to_processbench() for r in rows))
    write_jsonl(HELDOUT["corrupted"], (r.to_processbench() for r in corrupted_rows_for(cfg, 1000, "test", seed=7)))
    log(f"wrote {len(rows)} policy rows ({sum(r.label >= 0 for r in rows)} erroneous) and 1000 corrupted rows")


def _requests(rows):
    from sgpo.judges.base import JudgeRequest

    return [JudgeRequest(r.problem, r.steps, r.reference, r.reference.rsplit("Answer: ", 1)[-1] if r.reference else None)
            for r in rows]


def mc_judge(n: int, temperature: float, model=None, tok=None, prompt=None, cfg=None):
    from sgpo.judges.montecarlo import RolloutJudge, task_verifier
    from sgpo.train.prefix_sampler import PolicyPrefixSampler
    from sgpo.train.runtime import sampling_precision, task_for

    judge = RolloutJudge(task_verifier(task_for(cfg)), n=n)
    device = next(model.parameters()).device
    judge.bind(PolicyPrefixSampler(model, tok, prompt, cfg.rollout.max_new_tokens, temperature, batch_size=512,
                                   sampler=cfg.rollout.sampler, precision=lambda: sampling_precision(cfg, model, device)))
    return judge


def run_mc(grid: list[tuple[float, int]]) -> None:
    import torch

    from sgpo.judge_training.arith_data import config_policy
    from sgpo.judges.data import read_processbench
    from sgpo.judges.judge_eval import compute_metrics

    torch.set_num_threads(2)
    cfg, model, tok, prompt = config_policy(log=log)
    rows = read_processbench(HELDOUT["policy"])
    path = OUT / "mc.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for temperature, n in grid:
        key = f"T={temperature:g} N={n}"
        if key in results:
            continue
        judge = mc_judge(n, temperature, model, tok, prompt, cfg)
        t0 = time.perf_counter()
        verdicts = judge.judge(_requests(rows))
        seconds = time.perf_counter() - t0
        m = compute_metrics(rows, verdicts, seconds)
        wrong = sum(r.label >= 0 or not r.final_answer_correct for r in rows)
        results[key] = {"temperature": temperature, "n": n, **{k: m[k] for k in ("f1", "acc_erroneous", "acc_correct", "exact")},
                        "sampled_tokens": judge.sampled_tokens, "completions": judge.completions, "seconds": seconds,
                        "tokens_per_wrong_response": judge.sampled_tokens / max(1, wrong), "rows": len(rows)}
        log(f"{key}: F1 {m['f1']:.3f} err {m['acc_erroneous']:.3f} tokens/verdict {results[key]['tokens_per_wrong_response']:.0f} "
            f"({seconds:.0f} s)")
        path.write_text(json.dumps(results, indent=1) + "\n")


class UniformJudge:
    """The ``random`` control as a judge: a first-error index drawn uniformly from -1..K-1 (seeded)."""

    def __init__(self, seed: int = 0):
        import random

        self.rng = random.Random(seed)

    def judge(self, requests):
        from sgpo.judges.base import Verdict

        return [Verdict(self.rng.randrange(-1, len(r.steps)), len(r.steps)) for r in requests]


def run_judges(trained: list[str]) -> None:
    """Every judge's ProcessBench metrics on both held-out sets -> judges.json (label -> set -> metrics)."""
    import torch

    from sgpo.judge_training.arith_data import config_policy
    from sgpo.judges.data import read_processbench
    from sgpo.judges.judge_eval import compute_metrics
    from sgpo.judges.noisy import NoisyJudge
    from sgpo.judges.prm import PRMJudge
    from sgpo.tasks.arith import ArithRuleJudge

    torch.set_num_threads(2)
    cfg, model, tok, prompt = config_policy(log=log)
    judges = {"sgpo": lambda: ArithRuleJudge(), "sgpo_noise0.2": lambda: NoisyJudge(ArithRuleJudge(), 0.2),
              "sgpo_noise0.4": lambda: NoisyJudge(ArithRuleJudge(), 0.4), "random": lambda: UniformJudge(),
              "sgpo_mc_online": lambda: mc_judge(1, 0.0, model, tok, prompt, cfg)}
    for spec in trained:
        label, _, path = spec.partition("=")
        judges[label] = lambda path=path: PRMJudge.from_pretrained(path, batch_size=64)
    out_path = OUT / "judges.json"
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for label, make in judges.items():
        judge = make()
        for name, path in HELDOUT.items():
            rows = read_processbench(path)
            t0 = time.perf_counter()
            verdicts = judge.judge(_requests(rows))
            m = compute_metrics(rows, verdicts, time.perf_counter() - t0)
            results.setdefault(label, {})[name] = {k: m[k] for k in ("f1", "acc_erroneous", "acc_correct", "exact", "failures",
                                                                   "latency_s", "rows")}
            if hasattr(judge, "sampled_tokens"):
                results[label][name]["sampled_tokens"] = judge.sampled_tokens
            log(f"{label} on {name}: F1 {m['f1']:.3f} (err {m['acc_erroneous']:.3f}, correct {m['acc_correct']:.3f})")
        out_path.write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("heldout", "mc", "judges"))
    parser.add_argument("--grid", default="0:1,1.3:1,1.3:2,1.3:4,1.3:8,0.7:1,0.7:4",
                        help="mc: temperature:N pairs, comma-separated")
    parser.add_argument("--trained", action="append", default=[], metavar="LABEL=DIR")
    args = parser.parse_args(argv)
    if args.what == "heldout":
        make_heldout()
    elif args.what == "mc":
        run_mc([(float(t), int(n)) for t, n in (p.split(":") for p in args.grid.split(","))])
    else:
        run_judges(args.trained)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

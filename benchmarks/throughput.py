"""Throughput of an RL step: the native trainer against TRL's GRPOTrainer, and against the machine.

    python benchmarks/throughput.py engines [--models tiny smollm2] [--rounds 2] [--steps 5]
    python benchmarks/throughput.py scaling [--model smollm2]      # step time against G, tokens, prompts
    python benchmarks/throughput.py learning [--seeds 0 1 2]       # curves with the speed-ups vs published
    python benchmarks/throughput.py report                          # BENCHMARKS.md section + PNGs

``engines`` runs each engine in its own process on identical work (benchmarks/engines.py's set-up:
same weights, task, batch, tokens, temperature, lr, one update per step, no KL, bf16 autocast),
taking turns for ``--rounds`` rounds; per run it records seconds per step (median over steps after
the first) split into sample / judge / train, generated tokens per second and peak RSS. In the same
run it measures the machine: memory read bandwidth and bf16 / fp32 matmul rates with torch's own
threads, from which it computes the sampling bound (below).

Sampling bound of one step: every decode step must read the weights once (bytes / bandwidth) and do
2 * params * batch FLOPs (/ matmul rate); the bound is the larger of the two, times the decode
steps, plus the prefill's FLOPs. It leaves out the KV-cache reads, so it is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "throughput"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def learning(seeds: list[int], labels: list[str]) -> None:
    """The default (configs/arith.yaml, full length) with this code's speed-ups, for comparison with the
    published runs under benchmarks/results/learning/arith (made before them)."""
    import tempfile

    from learning import run_one

    for label in labels:
        for seed in seeds:
            out = RESULTS / "learning" / label / f"seed_{seed}.json"
            if out.exists():
                continue
            with tempfile.TemporaryDirectory() as tmp:
                res = run_one("arith", label, seed, Path(tmp))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(res, indent=1))
            print(f"{label} seed {seed}: {res['wall_seconds']:.0f} s, last {res['metric']} "
                  f"{[m[res['metric']] for m in res['history'] if res['metric'] in m][-1]:.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("learning")
    lp.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    lp.add_argument("--labels", nargs="+", default=["sgpo", "grpo"])
    a = p.parse_args()
    if a.cmd == "learning":
        learning(a.seeds, a.labels)


if __name__ == "__main__":
    main()

"""The property tests of tests/test_fuzz.py at 100x their CI example count (or --scale N).

    python benchmarks/fuzz.py            # 30,000 examples per text parser (CI: 300)
    python benchmarks/fuzz.py --scale 10

Prints pytest's summary (each test and its examples with --hypothesis-show-statistics) and exits
with pytest's status: 0 means no parser crashed on any example.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CI_EXAMPLES = 300


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=100, help="times the CI example count (default 100)")
    ap.add_argument("-k", default=None, help="only the tests matching this pytest -k expression")
    args = ap.parse_args()
    env = {**os.environ, "SGPO_FUZZ_EXAMPLES": str(CI_EXAMPLES * args.scale), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", str(ROOT / "tests" / "test_fuzz.py"), "-p", "no:cacheprovider",
           "--hypothesis-show-statistics", "--durations=0"]
    if args.k:
        cmd += ["-k", args.k]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())

"""The property tests of tests/test_fuzz.py at 100x their CI example count (or --scale N).

    python benchmarks/fuzz.py              # 30,000 examples per text parser (CI: 300)
    python benchmarks/fuzz.py --scale 10 -k overrides

Each property test runs in its own pytest process, one after another, so a long run that is
stopped still has the finished tests' results. Prints one line per test (examples run, failing
examples, seconds) from hypothesis' statistics, and exits non-zero if any parser crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "test_fuzz.py"
CI_EXAMPLES = 300
_STATS = re.compile(r"(\d+) passing examples?, (\d+) failing examples?, (\d+) invalid examples?")


def property_tests() -> list[str]:
    text = TESTS.read_text()
    return [m.group(1) for m in re.finditer(r"@given\([^\n]*\n(?:[^\n]*\n)*?def (test_\w+)", text)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=100, help="times the CI example count (default 100)")
    ap.add_argument("-k", default="", help="only the tests whose name contains this")
    ap.add_argument("--log-dir", type=Path, default=None, help="keep each test's pytest output here")
    args = ap.parse_args()
    env = {**os.environ, "SGPO_FUZZ_EXAMPLES": str(CI_EXAMPLES * args.scale), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    worst = 0
    for name in property_tests():
        if args.k not in name:
            continue
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", str(TESTS), "-p", "no:cacheprovider",
                               "--hypothesis-show-statistics", "-k", name], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            (args.log_dir / f"{name}.txt").write_text(proc.stdout + proc.stderr)
        found = _STATS.findall(proc.stdout)
        passing, failing = sum(int(p) for p, _, _ in found), sum(int(f) for _, f, _ in found)
        verdict = "ok" if proc.returncode == 0 else "FAILED"
        print(f"{name}: {verdict}, {passing + failing} examples ({failing} failing), {seconds:.0f} s", flush=True)
        worst = max(worst, proc.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Run tests/verl_venv inside a virtual environment with verl 0.9.1 (which needs transformers < 5.11 and
# Python < 3.13, so it cannot share the main environment).
#
# The venv lives outside the clone, at $SGPO_VERL_VENV (default ~/.cache/sgpo/verl-venv), and is
# reused between runs; it is rebuilt only when the requirements, the pins or the Python version
# change. sgpo itself is re-installed (editable, from this checkout) on every run: cheap, and right
# even when the checkout moved. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${SGPO_VERL_PYTHON:-python3.11}"
VENV="${SGPO_VERL_VENV:-$HOME/.cache/sgpo/verl-venv}"
# Filtered from pip's output: a warning for each package the machine's extra local indexes lack, and
# the resolver's note that verl's deps left out on purpose (see verl-requirements.txt) are missing.
quiet() {
    "$@" 2>&1 | { grep -v -E "is neither a file nor a directory|^verl 0\.9\.1 requires|dependency resolver does not currently" || true; }
}
PINS=(-c "${SGPO_VERL_PINS:-scripts/verl-constraints.txt}")  # the lock of this environment (scripts/lock.sh)
stamp=$(cat scripts/verl-requirements.txt "${PINS[1]}" <("$PY" --version) | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.sgpo-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "verl_env: building $VENV"
    start=$(date +%s)
    rm -rf -- "${VENV:?}"
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
    quiet "$VENV/bin/python" -m pip install -q "${PINS[@]}" -r scripts/verl-requirements.txt
    quiet "$VENV/bin/python" -m pip install -q --no-deps "${PINS[@]}" verl TransferQueue
    quiet "$VENV/bin/python" -m pip install -q "${PINS[@]}" -e .
    echo "$stamp" > "$VENV/.sgpo-stamp"
    echo "verl_env: built in $(( $(date +%s) - start )) s"
else
    quiet "$VENV/bin/python" -m pip install -q "${PINS[@]}" -e .  # new sgpo dependencies come in here
fi
# SGPO_VERL_TESTS=1 lets tests/verl_venv/conftest.py collect the tests (the main run skips them).
SGPO_VERL_TESTS=1 OMP_NUM_THREADS=1 RAY_DISABLE_IMPORT_WARNING=1 "$VENV/bin/python" -m pytest -p no:cacheprovider tests/verl_venv "$@"

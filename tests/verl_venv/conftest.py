"""tests/verl_venv run inside verl's own virtual environment (``bash scripts/verl_env.sh``), which sets
SGPO_VERL_TESTS=1. Anywhere else -- the main test run, which has no verl -- they are not collected,
so the main run never imports verl. (The folder is not called ``verl``: with ``tests/`` on
``sys.path``, as pytest puts it, a ``tests/verl`` folder would import as an empty namespace package
``verl`` wherever the real one is missing.)"""

import os

if os.environ.get("SGPO_VERL_TESTS") != "1":
    collect_ignore_glob = ["*"]
else:
    import sys
    from pathlib import Path

    # the verl tests reuse the hand-made batch of tests/test_verl_estimator.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

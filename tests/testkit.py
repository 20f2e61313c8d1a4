"""Helpers several test files share: ``from testkit import sgpo_cli, tiny_overrides``.

A module of its own, not conftest.py: a worker process started with ``spawn`` re-imports the test
module that defined its function, and ``import conftest`` there would find whichever conftest.py
is first on sys.path (tests/verl_venv has one). Fixtures live in conftest.py. Tests that train in a
subprocess are marked ``slow`` (``pytest -m "not slow"`` skips them for a quick loop;
tests/test_layout.py checks the marks).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from sgpo.judges import Verdict
from sgpo.rollouts.file import RolloutRecord
from sgpo.rollouts.writer import RolloutsWriter
from sgpo.train.checkpoint import load_trainer_state
from sgpo.train.metrics import read_jsonl

# -- numbers ------------------------------------------------------------------------------------


def close(actual: torch.Tensor, expected, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Element-wise closeness of a tensor to a nested list of hand-computed floats."""
    torch.testing.assert_close(actual.double(), torch.tensor(expected, dtype=torch.float64), rtol=rtol, atol=atol)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def jsonl(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON Lines to ``path``."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- runs of the native trainer ------------------------------------------------------------------


#: A run small enough for a test: 1-layer d=32 policy, 2 prompts x G=4, short responses.
TINY = [
    "task.n_ops=2", "task.ops=[add,sub]", "task.start_max=9", "task.operand_max=9", "task.value_max=30",
    "task.n_train=64", "task.n_eval=8",
    "model.n_layers=1", "model.d_model=32", "model.n_heads=2",
    "warmup.steps=20", "warmup.batch_size=16",
    "rollout.group_size=4", "rollout.prompts_per_step=2", "rollout.max_new_tokens=24",
    "optim.mini_batch_size=4", "train.eval_every=2", "train.eval_k=2", "train.progress=false",
]


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [*TINY, f"warmup.cache_dir={tmp_path / 'warmup'}", *extra]


def sgpo_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sgpo.cli", *args], capture_output=True, text=True, env=env, **kw)


def train_killed_after_checkpoint(overrides: list[str], run_dir: Path, checkpoint_step: int, last_step: int,
                                  sig: int = signal.SIGKILL, on_checkpoint=None) -> tuple[int, str]:
    """Start `sgpo train` into ``run_dir`` and send it ``sig`` once checkpoint ``checkpoint_step`` is
    on disk (after calling ``on_checkpoint(checkpoint_dir)``, if given). Returns the exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sgpo.cli", "train", *overrides, f"train.out_dir={run_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    marker = run_dir / "checkpoints" / f"step_{checkpoint_step}" / "trainer_state.json"
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if on_checkpoint is not None and marker.exists():
        on_checkpoint(marker.parent)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert marker.exists(), err
    assert not (run_dir / "checkpoints" / f"step_{last_step}").exists(), "the run finished before it could be stopped"
    return proc.returncode, err


def assert_resume_is_exact(overrides: list[str], tmp_path: Path, checkpoint_step: int, last_step: int):
    """Train once uninterrupted and once SIGKILLed after a checkpoint then resumed; every metric
    must match. Returns the final trainer states (uninterrupted, resumed) and their run dirs."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert sgpo_cli("train", *overrides, f"train.out_dir={full}").returncode == 0
    train_killed_after_checkpoint(overrides, killed, checkpoint_step, last_step)
    resumed = sgpo_cli("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert comparable(read_jsonl(killed / "metrics.jsonl")) == comparable(read_jsonl(full / "metrics.jsonl"))
    state = lambda run: load_trainer_state(run / "checkpoints" / f"step_{last_step}")  # noqa: E731
    return state(full), state(killed)


#: Judge counters a checkpoint restores (the cache's and the noise's); the others count a model
#: judge's calls and time in this process, and start again at 0 in a resumed one.
RESTORED_JUDGE_COUNTERS = ("judge/cache_hits", "judge/cache_misses", "judge/corrupted")


def comparable(metrics: list[dict]) -> list[dict]:
    """Everything but timings and the judge's per-process counters."""
    return [
        {k: v for k, v in m.items()
         if not k.startswith(("time/", "judge/")) and k != "tokens_per_s" or k in RESTORED_JUDGE_COUNTERS}
        for m in metrics
    ]


# -- rollouts files ------------------------------------------------------------------------------

#: Group size of the hand-made rollouts files.
G = 4
HEADER = {"model": "hand-made", "task": "arith", "group_size": G, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8}


def make_record(group: int, sample: int, outcome: float = 0.0, verdict: Verdict | None = None, response: str = "1 + 2 = 3",
                response_ids: list[int] | None = None, prompt_ids: list[int] | None = None) -> RolloutRecord:
    ids = response_ids if response_ids is not None else [10 + sample, 11, 12][: 1 + (sample + group) % 3]
    return RolloutRecord(
        group=group, sample=sample, problem_id=f"p{group}", problem=f"Start with {group}. Add 2.",
        reference="0 + 2 = 2\nAnswer: 2", answer="2", prompt=f"Start with {group}. Add 2.\n", response=response,
        prompt_ids=prompt_ids if prompt_ids is not None else [4, 20 + group, 5], response_ids=ids,
        logprobs=[-0.5 - 0.25 * t - 0.125 * sample for t in range(len(ids))], outcome=outcome, verdict=verdict,
    )


def write_file(path: Path, groups: list[list[RolloutRecord]], header: dict = HEADER) -> Path:
    with RolloutsWriter(path, header) as w:
        for g in groups:
            w.write_group(g)
    return path


def group(g: int, outcomes=(0, 0, 0, 0), verdicts=(None,) * G) -> list[RolloutRecord]:
    return [make_record(g, j, float(o), v) for j, (o, v) in enumerate(zip(outcomes, verdicts))]

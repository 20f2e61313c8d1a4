"""Faults in the middle of a run: the judge server is killed and started again.

A real OpenAI-compatible server (``tests/fixtures_server.py`` as its own process, answering
``\\boxed{0}``) on a loopback port; a real native training run (``Trainer.train``) judging over
HTTP (``judge.kind=llm_http``). The server is SIGKILLed after step 1 and started again on the
same port before step 4: the run completes, every judged response of steps 2-3 is a counted
failure, and verdicts succeed again from step 4.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from fixtures_server import free_port, stop, wait_ready

from sgpo.train.config import load_config
from sgpo.train.metrics import read_jsonl
from sgpo.train.trainer import Trainer

SERVER = Path(__file__).with_name("fixtures_server.py")


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port), "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/v1/models", proc, timeout=30)
    return proc


def test_judge_server_killed_and_restarted_mid_run(tmp_path):
    port = free_port()
    overrides = [
        "model.n_layers=1", "model.d_model=32", "model.n_heads=2",
        "task.n_train=16", "task.n_eval=2",
        "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8",
        "algorithm.method=sgpo", "algorithm.scope=all_incorrect",
        "judge.kind=llm_http", f"judge.http.base_url=http://127.0.0.1:{port}/v1", "judge.http.model=m",
        "judge.http.max_retries=1", "judge.http.backoff_s=0.01", "judge.http.backoff_max_s=0.02", "judge.http.timeout_s=2",
        "train.steps=5", "train.eval_every=0", "train.save_every=0", "train.eval_k=1", "train.progress=false",
        "train.bf16=false", "train.device=cpu", f"train.out_dir={tmp_path / 'run'}",
    ]
    server = {"proc": start_server(port)}
    events = []
    try:
        trainer = Trainer(load_config(None, overrides), log=lambda *a: None)
        step = trainer.step

        def step_with_outage() -> dict:
            done = trainer.step_idx  # steps completed so far
            if done == 1:  # after step 1: the server dies (no goodbye, connections refused from now on)
                server["proc"].send_signal(signal.SIGKILL)
                server["proc"].wait()
                events.append(("killed", done))
            if done == 3:  # before step 4: it is back, on the same port
                server["proc"] = start_server(port)
                events.append(("restarted", done))
            return step()

        trainer.step = step_with_outage
        history = trainer.train()
    finally:
        stop(server["proc"])

    assert events == [("killed", 1), ("restarted", 3)]
    # Step 0 is the evaluation before the first update; the training steps follow it.
    metrics = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if m["step"] > 0]
    history = [m for m in history if m["step"] > 0]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5] == [m["step"] for m in history]
    assert (tmp_path / "run" / "checkpoints" / "step_5").is_dir() and "eval/accuracy" in metrics[-1]
    # Every response of a step is in samples.jsonl (log_samples 8 >= 4 responses); count its verdicts.
    counts = {m["step"]: Counter() for m in metrics}
    for sample in read_jsonl(tmp_path / "run" / "samples.jsonl"):
        if sample["verdict"] is not None:
            counts[sample["step"]][sample["verdict"]["status"]] += 1
    for m in metrics:
        c = counts[m["step"]]
        # An untrained policy gets (nearly) everything wrong, so every step has responses to judge.
        assert m["sgpo/judged_responses"] == sum(c.values()) > 0, (m["step"], c)
        # A failure is a verdict that is not ok: an HTTP error, or "invalid" for a response with no steps.
        assert m["sgpo/judge_failures"] == c["error"] + c["invalid"], (m["step"], c)
        if m["step"] in (2, 3):  # down: nothing gets through
            assert c["ok"] == 0 and c["error"] > 0, (m["step"], c)
        else:  # up, before the outage and after the restart
            assert c["error"] == 0 and c["ok"] > 0, (m["step"], c)
    # The judge's own statistics count the connection failures, and none after the restart.
    errors = {m["step"]: m.get("judge/failures/error", 0) for m in metrics}
    assert errors[1] == 0 and errors[3] >= counts[2]["error"] + counts[3]["error"] and errors[5] == errors[3], errors

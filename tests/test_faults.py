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
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5] == [m["step"] for m in history]
    assert (tmp_path / "run" / "checkpoints" / "step_5").is_dir() and "eval/accuracy" in metrics[-1]
    judged = [m["sgpo/judged_responses"] for m in metrics]
    failed = [m["sgpo/judge_failures"] for m in metrics]
    # An untrained policy gets (nearly) everything wrong, so every step has responses to judge.
    assert all(j > 0 for j in judged), judged
    # Up: every verdict ok. Down (steps 2, 3): every judged response a counted failure. Back: ok again.
    assert failed[0] == 0 and failed[3] == 0 and failed[4] == 0, failed
    assert failed[1] == judged[1] and failed[2] == judged[2], (failed, judged)
    # The failures are the HTTP kind (connection refused), counted by the judge's own statistics too.
    assert metrics[2]["judge/failures/error"] >= failed[1] + failed[2]
    assert metrics[4]["judge/failures/error"] == metrics[2]["judge/failures/error"]  # none after the restart
    # The samples say the same, response by response: the verdicts of steps 2-3 are errors, the others ok.
    status = {}
    for sample in read_jsonl(tmp_path / "run" / "samples.jsonl"):
        if sample["verdict"] is not None:
            status.setdefault(sample["step"], set()).add(sample["verdict"]["status"])
    assert status == {1: {"ok"}, 2: {"error"}, 3: {"error"}, 4: {"ok"}, 5: {"ok"}}, status

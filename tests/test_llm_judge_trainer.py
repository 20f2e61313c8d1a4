"""A training step whose HTTP judge fails (server down, 500s, garbage) completes, counts the
failures, and leaves the failed responses at their outcome reward (plain GRPO for them)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from fixtures_server import FakeServer, Response, completion, free_port

from sgpo.core import METHODS, ShapingParams
from sgpo.judges.stats import collect_stats
from sgpo.train.config import load_config
from sgpo.train.trainer import Trainer


def tiny_sgpo_config(base_url: str, out_dir) -> list[str]:
    return [
        "model.n_layers=1", "model.d_model=32", "model.n_heads=2",
        "task.n_train=8", "task.n_eval=2",
        "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8",
        "algorithm.method=sgpo", "algorithm.scope=all_incorrect",
        "judge.kind=llm_http", f"judge.http.base_url={base_url}", "judge.http.model=m",
        "judge.http.max_retries=1", "judge.http.backoff_s=0.01", "judge.http.timeout_s=2",
        "train.steps=1", "train.progress=false", "train.bf16=false", "train.device=cpu", f"train.out_dir={out_dir}",
    ]


@pytest.mark.parametrize("fault", ["down", "http500", "garbage"])
def test_training_step_with_a_failing_judge_counts_failures(fault, tmp_path):
    behaviours = {
        "http500": lambda i, body: Response(500, "overloaded"),
        "garbage": lambda i, body: Response(body=completion("I am not sure about any of this.")),
    }
    with FakeServer(behaviours[fault]) if fault in behaviours else nullcontext() as server:
        url = server.base_url if server else f"http://127.0.0.1:{free_port()}/v1"  # "down": nobody listens
        trainer = Trainer(load_config(None, tiny_sgpo_config(url, tmp_path / "run")), log=lambda *a: None)
        metrics = trainer.step()
    # An untrained policy gets everything wrong: all four responses are judged, all fail.
    assert metrics["sgpo/judged_responses"] == 4
    assert metrics["sgpo/judge_failures"] == 4
    assert metrics["sgpo/rts_mean"] == 0.0 and metrics["reward/mean"] == 0.0  # rewards stayed at the outcomes
    stats = collect_stats(trainer.judge)
    status = "invalid" if fault == "garbage" else "error"
    assert stats[f"judge/failures/{status}"] == 4 and stats["judge/calls"] >= 4
    # The same counters reach metrics.jsonl through the step's metrics.
    assert metrics[f"judge/failures/{status}"] == 4 and metrics["judge/calls"] == stats["judge/calls"]


def test_failed_verdicts_keep_outcome_rewards_in_the_core():
    outcomes = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    rts = torch.tensor([[0.5, 0.75], [0.25, 0.5]])
    ok = torch.tensor([[True, False], [False, False]])
    out = METHODS.get("sgpo")(outcomes, rts=rts, verdict_ok=ok, params=ShapingParams())
    assert out.rewards[0, 0] > 0 and out.rewards[0, 1] == 0 and (out.rewards[1] == 0).all()
    assert (out.advantages[1] == 0).all()  # a group with only failed verdicts is plain GRPO

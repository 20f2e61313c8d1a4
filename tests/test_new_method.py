"""Adding a method is one registered function: this test registers one and trains a step with it in
the native trainer and in TRL's SGPOTrainer, with no other file edited (docs/architecture.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from sgpo.core import METHODS, MethodOutput, ShapingParams, group_advantages, judge_mask, known_rewards
from sgpo.grading import GradingSettings, grade
from sgpo.sampling.rollout import layout
from sgpo.train.batches import Batch
from sgpo.train.config import load_config
from sgpo.train.trainer import Trainer

NAME = "half_rts"
CALLS: list[tuple[int, int]] = []


def half_rts(outcomes: torch.Tensor, rts: torch.Tensor, verdict_ok: torch.Tensor,
             params: ShapingParams = ShapingParams(), **_) -> MethodOutput:
    """Judged wrong responses in scope get r = RTS / 2; the rest r = o. [N, G] -> MethodOutput."""
    CALLS.append(tuple(outcomes.shape))
    graded = judge_mask(outcomes, params.scope) & verdict_ok
    rewards = torch.where(graded, rts / 2, outcomes.float())
    known = known_rewards(outcomes, verdict_ok, params.scope)
    advantages = group_advantages(rewards, params.scale, params.eps, known=known)
    return MethodOutput(rewards, advantages, torch.ones(len(outcomes), dtype=torch.bool), known)


@pytest.fixture
def registered():
    METHODS.register(NAME, judges=True, reward_only=True)(half_rts)
    CALLS.clear()
    yield NAME
    METHODS.unregister(NAME)


def test_the_method_is_a_choice_everywhere_while_registered(registered):
    assert METHODS.get(NAME).judges and METHODS.get(NAME).grades
    assert load_config(None, [f"algorithm.method={NAME}"]).algorithm.method == NAME
    out = METHODS.get(NAME)(torch.zeros(1, 2), rts=torch.tensor([[0.5, 0.25]]), verdict_ok=torch.ones(1, 2, dtype=torch.bool))
    assert out.rewards.tolist() == [[0.25, 0.125]] and out.advantages[0, 0] > 0 > out.advantages[0, 1]


def wrong_at(problem, k: int | None) -> str:
    """The problem's reference solution with step k's result and the answer made wrong (None: right)."""
    lines = problem.reference.split("\n")
    if k is not None:
        lines[k] = lines[k].rstrip("0123456789") + "999"
        lines[-1] = "Answer: 999"
    return "\n".join(lines)


def test_native_trainer_trains_a_step_with_it(registered, tmp_path, monkeypatch):
    overrides = [
        "model.n_layers=1", "model.d_model=32", "model.n_heads=2", "task.n_train=16", "task.n_eval=2", "task.n_ops=3",
        "rollout.prompts_per_step=2", "rollout.group_size=4", "train.steps=1", "train.eval_every=0", "train.eval_k=1",
        "train.progress=false", "train.bf16=false", "train.device=cpu", f"train.out_dir={tmp_path / 'run'}",
        f"algorithm.method={NAME}", "algorithm.scope=all_incorrect",
    ]
    trainer = Trainer(load_config(None, overrides), log=lambda *a: None)
    assert trainer.judge is not None  # the registration says it judges: the configured (rule) judge is built
    # An untrained policy writes one-line noise; hand-written responses go wrong at steps 0, 1 and 2.
    problems = trainer.train_problems[:2]
    texts = [wrong_at(p, k) for p in problems for k in (0, 1, 2, None)]
    ids = [trainer.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    rollout = layout([[4, 5]] * len(texts), ids, texts, trainer.tokenizer.pad_token_id)
    outcomes = torch.tensor([trainer.task.verify(t, problems[i // 4]) for i, t in enumerate(texts)]).view(2, 4)
    monkeypatch.setattr(trainer, "_next_batch", lambda n: Batch(problems, rollout, outcomes))
    before = [p.detach().clone() for p in trainer.trainable]
    metrics = trainer.step()
    assert CALLS == [(2, 4)] and outcomes.tolist() == [[0, 0, 0, 1]] * 2
    assert metrics["sgpo/judged_responses"] == 6 and metrics["sgpo/judge_failures"] == 0
    # RTS = k / 4 (three operations and the answer line), r = RTS / 2; a right response r = 1.
    assert metrics["reward/mean"] == pytest.approx((2 * (0 + 1 / 4 + 2 / 4) / 2 + 2) / 8)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.trainable))


def test_sgpo_trainer_trains_a_step_with_it(registered, tmp_path):
    pytest.importorskip("trl")
    sys.path.insert(0, str(Path(__file__).parent))
    from trl_setup import G, TextJudge, outcome, trainer

    from sgpo.integrations.trl import TRL_EPS, method_choices
    from sgpo.tasks.base import Problem

    assert NAME in method_choices()
    t = trainer(tmp_path / "run", per_device=16, steps=1, method=NAME)
    t.train()
    assert t.state.global_step == 1 and CALLS and t.sgpo_judge_calls > 0
    texts = list(t._logs["completion"])
    by_prompt = {r["prompt"]: r["hard"] for r in t.train_dataset}
    outcomes = torch.tensor([outcome(c, by_prompt[p]) for p, c in zip(t._logs["prompt"], texts)]).view(-1, G)
    settings = GradingSettings(NAME, ShapingParams(eps=TRL_EPS), step_mode="line")
    native = grade([Problem("", "", None, None)] * len(outcomes), texts, outcomes, settings, TextJudge())
    expected = torch.where(native.known, native.rewards, torch.nan).reshape(-1).tolist()
    assert list(t._logs["rewards"]["correct"]) == pytest.approx(expected, abs=1e-6, nan_ok=True)
    assert list(t._logs["advantages"]) == pytest.approx(native.advantages.reshape(-1).tolist(), abs=1e-5)
    assert any(0 < r < 0.5 for r in t._logs["rewards"]["correct"])  # RTS / 2: the new method's rewards


def test_the_config_reads_the_registries():
    from sgpo.train.config import AlgorithmConfig, ConfigError

    assert AlgorithmConfig(mapping="linear", linear_scale=0.3).mapping_params() == {"scale": 0.3}
    assert AlgorithmConfig(beta=2.0).mapping_params() == {"beta": 2.0, "gamma": 0.5}
    with pytest.raises(ConfigError, match="algorithm.scope: .*choose one of: 'all_incorrect', 'all_negative'"):
        load_config(None, ["algorithm.scope=mixed"])

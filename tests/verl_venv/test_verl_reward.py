"""sgpo's ``compute_score`` through verl's own reward loop: ``RewardLoopWorker`` (what every reward
worker runs) with verl's naive reward manager, configured by verl's composed Hydra config with the
keys a user types, on a ``DataProto`` laid out like the agent loop's and tokenized by a real
tokenizer (sgpo's tiny arithmetic tokenizer, saved to disk: nothing is downloaded). Its scores then
go through verl's advantage step and equal ``sgpo.grading.grade``."""

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
import verl
from hydra import compose, initialize_config_dir
from test_verl_estimator import G, scenario, verl_batch
from verl import DataProto
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker, migrate_legacy_reward_impl
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
from verl.trainer.ppo.ray_trainer import compute_advantage

from sgpo.core import ShapingParams
from sgpo.grading import GradingSettings, grade
from sgpo.integrations.verl.estimator import UNKNOWN_SCORE
from sgpo.models.policies import arith_tokenizer
from sgpo.tasks.arith import ArithRuleJudge

CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    arith_tokenizer().save_pretrained(path)
    return path


def trainer_config(tokenizer_dir, judge_yaml, *extra):
    overrides = [
        "algorithm.adv_estimator=sgpo",
        f"actor_rollout_ref.model.path={tokenizer_dir}",
        "reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward",
        "reward.custom_reward_function.name=compute_score",
        f"+reward.custom_reward_function.reward_kwargs.judge_config={judge_yaml}",
        *extra,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
    return migrate_legacy_reward_impl(cfg)


def agent_loop_batch(tokenizer, problems, texts, data_source="sgpo/arith", P=48, R=96):
    """Rows as verl's agent loop hands them to the reward loop: left-padded prompts, right-padded
    responses, the dataset's data_source / reward_model / extra_info and the group uid."""
    n = len(texts)
    prompts = torch.full((n, P), tokenizer.pad_token_id)
    responses = torch.full((n, R), tokenizer.pad_token_id)
    mask = torch.zeros(n, P + R, dtype=torch.long)
    for i, text in enumerate(texts):
        p_ids = tokenizer(problems[i // G].question)["input_ids"][-P:]
        r_ids = tokenizer(text)["input_ids"][:R] + [tokenizer.eos_token_id]
        assert len(r_ids) <= R, "response longer than the test's response length"
        prompts[i, P - len(p_ids):] = torch.tensor(p_ids)
        responses[i, :len(r_ids)] = torch.tensor(r_ids)
        mask[i, P - len(p_ids):P + len(r_ids)] = 1
    input_ids = torch.cat([prompts, responses], dim=1)
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask, "input_ids": input_ids,
                 "position_ids": position_ids},
        non_tensors={
            "data_source": np.array([data_source] * n, dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": problems[i // G].answer} for i in range(n)],
                                     dtype=object),
            "extra_info": np.array([{"question": problems[i // G].question, "reference": problems[i // G].reference,
                                     "index": i // G} for i in range(n)], dtype=object),
            "uid": np.array([f"uid-{i // G}" for i in range(n)], dtype=object),
        },
    )


def run_reward_loop(cfg, data):
    async def main():
        worker = RewardLoopWorker(cfg)  # the Ray actor's class, run in this process
        return await worker.compute_score_batch(data)

    return asyncio.run(main())


def test_reward_loop_scores_then_verl_advantages_equal_native(tokenizer_dir, tmp_path):
    judge_yaml = tmp_path / "judge.yaml"
    judge_yaml.write_text("judge:\n  kind: rule\n")
    cfg = trainer_config(tokenizer_dir, judge_yaml)
    problems, texts = scenario()
    data = agent_loop_batch(arith_tokenizer(), problems, texts)
    outputs = run_reward_loop(cfg, data)
    info = [o["reward_extra_info"] for o in outputs]
    scores = [o["reward_score"] for o in outputs]

    judge = ArithRuleJudge()
    settings = GradingSettings("sgpo", ShapingParams(scope="all_incorrect"), "line")
    outcomes = torch.tensor([r["acc"] for r in info]).view(-1, G)
    every_wrong = grade(problems, texts, outcomes, settings, judge=judge)  # what the reward loop must give:
    failed = (every_wrong.judged & ~every_wrong.verdict_ok).reshape(-1)  # ... with failures marked unknown
    expected_scores = torch.where(failed, UNKNOWN_SCORE, every_wrong.rewards.reshape(-1))
    assert scores == pytest.approx(expected_scores.tolist())
    assert outcomes.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert [r["first_error"] for r in info[:4]] == [0, 1, 2, 3]
    assert [r["first_error"] for r in info[16:20]] == [-1, 0, 3, -1]  # -1: all steps right, no answer / no steps
    assert all(r["n_steps"] == 5 for r in info[:4]) and info[16]["n_steps"] == 4
    assert [r["judge_status"] for r in info[12:16]] == ["invalid", "invalid", "no_steps", "invalid"]
    assert [r["judged"] for r in info[4:8]] == [0, 1, 0, 1]  # the mixed group's wrong ones with steps cost calls

    rm_scores = get_reward_manager_cls(cfg.reward.reward_manager.name).assemble_rm_scores(data, scores)
    response_mask = data.batch["attention_mask"][:, data.batch["prompts"].shape[1]:]
    # shuffle the rows so groups are interleaved, as verl's balancing leaves them
    order, _, _, _ = verl_batch(problems, texts, scores, seed=5)
    batch = DataProto.from_dict(tensors={"token_level_rewards": rm_scores[order], "response_mask": response_mask[order]},
                                non_tensors={"uid": data.non_tensor_batch["uid"][order]})
    out = compute_advantage(batch, adv_estimator=cfg.algorithm.adv_estimator, num_repeat=G,
                            norm_adv_by_std_in_grpo=cfg.algorithm.norm_adv_by_std_in_grpo, config=cfg.algorithm)
    native = grade(problems, texts, outcomes, GradingSettings("sgpo", ShapingParams(), "line"), judge=judge)
    expected = native.advantages.reshape(-1)[order][:, None] * response_mask[order]
    torch.testing.assert_close(out.batch["advantages"], expected)


def test_judge_failure_never_raises_math_task(tokenizer_dir, tmp_path):
    """The math task's verifier (boxed + math-verify) with an HTTP judge that cannot be reached:
    wrong responses score UNKNOWN_SCORE (an unknown reward) with judge_status 'error', correct ones 1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    judge_yaml = tmp_path / "judge.yaml"
    judge_yaml.write_text(f"judge:\n  kind: llm_http\n  http: {{base_url: 'http://127.0.0.1:{port}/v1', model: m, "
                          "max_retries: 0, timeout_s: 5}\n")
    cfg = trainer_config(tokenizer_dir, judge_yaml)
    from sgpo.tasks.base import Problem

    problem = Problem("m0", "What is 1/2 + 1/4?", "1/2 + 1/4 = 3/4", "3/4")
    texts = ["1/2 = 2/4\n2/4 + 1/4 = 3/4\nSo \\boxed{\\frac{3}{4}}", "1/2 + 1/4 = 2/6\n\\boxed{1/3}",
             "I think 0.75 is it: \\boxed{0.75}", "no idea"]
    data = agent_loop_batch(arith_tokenizer(), [problem], texts, data_source="math")
    data.non_tensor_batch["reward_model"][:] = [{"ground_truth": "\\frac{3}{4}"}] * len(texts)
    info = [o["reward_extra_info"] for o in run_reward_loop(cfg, data)]
    assert [r["acc"] for r in info] == [1.0, 0.0, 1.0, 0.0]
    assert [r["score"] for r in info] == [1.0, UNKNOWN_SCORE, 1.0, UNKNOWN_SCORE]
    assert [r["judge_status"] for r in info] == ["skipped", "error", "skipped", "error"]
    assert [r["verify_status"] for r in info] == ["correct", "wrong", "correct", "no_answer"]

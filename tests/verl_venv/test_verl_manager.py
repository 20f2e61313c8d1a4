"""``SGPORewardManager`` through verl's ``RewardLoopWorker``, with its group board a real Ray actor:
only the wrong responses of all-negative groups reach the judge, the rewards through verl's advantage
step still equal the native trainer's, and a missing sibling ends in a judge call, not a hang."""

import asyncio

import numpy as np
import pytest
import ray
import torch
from hydra import compose, initialize_config_dir
from test_verl_estimator import G, reward_fn_scores, scenario
from test_verl_reward import CONFIG_DIR, agent_loop_batch
from verl import DataProto
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker, migrate_legacy_reward_impl
from verl.trainer.ppo.ray_trainer import compute_advantage

from sgpo.core import ShapingParams
from sgpo.grading import GradingSettings, grade
from sgpo.integrations.verl.manager import BOARD_NAME, MIXED, GroupBoard
from sgpo.models.policies import arith_tokenizer
from sgpo.tasks.arith import ArithRuleJudge


class CountingJudge(ArithRuleJudge):
    """The arithmetic rule judge, counting the responses it is asked about (in this process)."""

    asked = 0

    def judge(self, requests):
        CountingJudge.asked += len(requests)
        return super().judge(requests)


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=80 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    arith_tokenizer().save_pretrained(path)
    return path


def manager_config(tokenizer_dir, judge_yaml, wait_s, n=G, name="compute_score", extra=()):
    overrides = [
        "algorithm.adv_estimator=sgpo", f"actor_rollout_ref.model.path={tokenizer_dir}",
        f"actor_rollout_ref.rollout.n={n}",
        "reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward",
        f"reward.custom_reward_function.name={name}",
        f"+reward.custom_reward_function.reward_kwargs.judge_config={judge_yaml}",
        f"+reward.custom_reward_function.reward_kwargs.group_wait_s={wait_s}",
        "reward.reward_manager.source=importlib", "reward.reward_manager.name=SGPORewardManager",
        "reward.reward_manager.module.path=pkg://sgpo.integrations.verl.manager", *extra,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return migrate_legacy_reward_impl(compose(config_name="ppo_trainer", overrides=overrides))


def streamed(cfg, data):
    """Each row scored by its own call, all in flight at once, as the agent loop streams sessions."""
    async def main():
        worker = RewardLoopWorker(cfg)
        return await asyncio.gather(*(worker.compute_score(data[i:i + 1]) for i in range(len(data))))

    return asyncio.run(main())


def batch_with_sessions(problems, texts, prefix):
    data = agent_loop_batch(arith_tokenizer(), problems, texts)
    data.non_tensor_batch["uid"] = np.array([f"{prefix}-{i // G}" for i in range(len(texts))], dtype=object)
    data.non_tensor_batch["session_id"] = np.array([i % G for i in range(len(texts))], dtype=object)
    return data


@pytest.fixture()
def judge_yaml(tmp_path, monkeypatch):
    import sgpo.judges.config as judges

    monkeypatch.setattr(judges, "build_base_judge", lambda cfg, task=None: CountingJudge())
    CountingJudge.asked = 0
    path = tmp_path / "judge.yaml"
    path.write_text("judge:\n  kind: rule\n  cache: false\n")
    return path


@pytest.mark.parametrize("name", ["compute_score", "compute_score_async"])
def test_only_all_negative_groups_are_judged(ray_cluster, tokenizer_dir, judge_yaml, name):
    problems, texts = scenario()
    cfg = manager_config(tokenizer_dir, judge_yaml, wait_s=120, name=name)
    data = batch_with_sessions(problems, texts, name)
    # the board the reward workers find by name (held here, so it outlives the worker of this test)
    board = ray.remote(GroupBoard).options(name=BOARD_NAME, get_if_exists=True).remote()
    before = ray.get(board.counts.remote())["posts"]
    outputs = streamed(cfg, data)
    counts = ray.get(board.counts.remote())
    assert (counts["posts"] - before, counts["open"]) == (20, 0)  # every session met its siblings there
    info = [o["reward_extra_info"] for o in outputs]
    outcomes = torch.tensor([r["acc"] for r in info]).view(-1, G)
    assert outcomes.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    # the mixed group's wrong responses with steps waited for a correct sibling and were not judged
    assert [r["judge_status"] for r in info[4:8]] == ["skipped", MIXED, "no_steps", MIXED]
    assert [r["judged"] for r in info[4:8]] == [0, 0, 0, 0] and [r["score"] for r in info[5:8:2]] == [0.0, 0.0]
    # every wrong response with steps of the all-negative groups was judged, once: a.P.G less the step-less ones
    native = grade(problems, texts, outcomes, GradingSettings("sgpo", ShapingParams(), "line"), judge=ArithRuleJudge())
    assert CountingJudge.asked == sum(r["judged"] for r in info) == native.calls == 12 - 2
    # and verl's advantage step gives the native trainer's advantages
    scores = [o["reward_score"] for o in outputs]
    response_mask = data.batch["attention_mask"][:, data.batch["prompts"].shape[1]:]
    rewards = torch.zeros_like(response_mask, dtype=torch.float32)
    rewards[torch.arange(len(scores)), response_mask.sum(1) - 1] = torch.tensor(scores)
    batch = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": response_mask},
                                non_tensors={"uid": data.non_tensor_batch["uid"]})
    out = compute_advantage(batch, adv_estimator="sgpo", num_repeat=G, config=cfg.algorithm)
    torch.testing.assert_close(out.batch["advantages"], native.advantages.reshape(-1)[:, None] * response_mask)


def test_a_method_that_asks_no_judge_does_not_wait(ray_cluster, tokenizer_dir, judge_yaml):
    """``random``: nothing to save, so no response goes to the board; the drawn grades are compute_score's."""
    problems, texts = scenario()
    method = ["+algorithm.sgpo.method=random", "+reward.custom_reward_function.reward_kwargs.method=random"]
    cfg = manager_config(tokenizer_dir, judge_yaml, wait_s=120, extra=method)
    board = ray.remote(GroupBoard).options(name=BOARD_NAME, get_if_exists=True).remote()
    before = ray.get(board.counts.remote())["posts"]
    data = batch_with_sessions(problems, texts, "random")
    info = [o["reward_extra_info"] for o in streamed(cfg, data)]
    assert ray.get(board.counts.remote())["posts"] == before and CountingJudge.asked == 0
    assert [r["judge_status"] for r in info[4:8]] == ["skipped", "drawn", "no_steps", "drawn"]
    # compute_score's fields (the draw is seeded by the row's extra_info too, so only the score differs)
    plain = reward_fn_scores(problems, texts, method="random")
    assert [{**r, "score": 0} for r in info] == [{**r, "score": 0} for r in plain]
    assert [r["score"] for r in info] == [r["score"] for r in (o["reward_extra_info"] for o in streamed(cfg, data))]


def test_a_missing_sibling_ends_in_a_judge_call(ray_cluster, tokenizer_dir, judge_yaml):
    """rollout.n says 4, the group has 3 sessions (one failed), all wrong: each waits group_wait_s, then is judged."""
    problems, texts = scenario()
    cfg = manager_config(tokenizer_dir, judge_yaml, wait_s=2)
    data = batch_with_sessions(problems, texts, "step2")
    rows = [0, 1, 2]
    info = [o["reward_extra_info"] for o in streamed(cfg, data.select_idxs(rows))]
    assert [r["judged"] for r in info] == [1, 1, 1] and [r["first_error"] for r in info] == [0, 1, 2]
    assert CountingJudge.asked == 3


def test_a_broken_board_costs_judge_calls_not_rewards(tokenizer_dir, judge_yaml, monkeypatch):
    """If the board cannot be reached, every wrong response with steps is judged, as with verl's naive manager."""
    import sgpo.integrations.verl.manager as manager

    def unreachable():
        raise ConnectionError("no board")

    monkeypatch.setattr(manager, "group_board", unreachable)
    problems, texts = scenario()
    info = [o["reward_extra_info"] for o in streamed(manager_config(tokenizer_dir, judge_yaml, wait_s=120),
                                                      batch_with_sessions(problems, texts, "broken"))]
    asked = CountingJudge.asked
    expected = reward_fn_scores(problems, texts)  # compute_score alone: every wrong response judged
    assert info == expected
    assert asked == sum(r["judged"] for r in expected) == 12  # (1 - accuracy).P.G less the 3 without steps

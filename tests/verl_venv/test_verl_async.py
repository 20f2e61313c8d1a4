"""``compute_score_async`` through verl's reward loop: verl awaits it on the reward worker's event loop,
it gives the same fields as ``compute_score``, and the wrong responses scored at once reach the judge
in batches larger than verl's thread pool (which caps the plain function's batches)."""

import asyncio
import os

import pytest
from hydra import compose, initialize_config_dir
from test_verl_estimator import G, reward_fn_scores, scenario, wrong_at
from test_verl_reward import CONFIG_DIR, agent_loop_batch
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker, migrate_legacy_reward_impl

from sgpo.models.policies import arith_tokenizer
from sgpo.tasks.arith import ArithRuleJudge, ArithTask

#: the size of the thread pool verl runs a plain reward function in (asyncio's default executor)
POOL = min(32, (os.cpu_count() or 1) + 4)


class BatchRecordingJudge(ArithRuleJudge):
    batches: list[int] = []

    def judge(self, requests):
        BatchRecordingJudge.batches.append(len(requests))
        return super().judge(requests)


@pytest.fixture()
def judge_yaml(tmp_path, monkeypatch):
    import sgpo.judges.config as judges

    monkeypatch.setattr(judges, "build_base_judge", lambda cfg, task=None: BatchRecordingJudge())
    BatchRecordingJudge.batches = []
    path = tmp_path / "judge.yaml"
    path.write_text("judge:\n  kind: rule\n  cache: false\n")
    return path


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    arith_tokenizer().save_pretrained(path)
    return path


def scores_through_verl(tokenizer_dir, judge_yaml, name, problems, texts, wait_s):
    overrides = [
        "algorithm.adv_estimator=sgpo", f"actor_rollout_ref.model.path={tokenizer_dir}",
        "reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward",
        f"reward.custom_reward_function.name={name}",
        f"+reward.custom_reward_function.reward_kwargs.judge_config={judge_yaml}",
        f"+reward.custom_reward_function.reward_kwargs.batch_wait_s={wait_s}",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = migrate_legacy_reward_impl(compose(config_name="ppo_trainer", overrides=overrides))
    data = agent_loop_batch(arith_tokenizer(), problems, texts)

    async def main():
        worker = RewardLoopWorker(cfg)
        assert worker.reward_manager.is_async_reward_score == name.endswith("_async")
        return await worker.compute_score_batch(data)

    return [o["reward_extra_info"] for o in asyncio.run(main())]


def test_async_reward_function_gives_the_same_fields(tokenizer_dir, judge_yaml):
    problems, texts = scenario()
    got = scores_through_verl(tokenizer_dir, judge_yaml, "compute_score_async", problems, texts, 0.02)
    expected = reward_fn_scores(problems, texts)  # the plain function, called directly
    assert got == expected


@pytest.mark.parametrize("name", ["compute_score", "compute_score_async"])
def test_batches_are_capped_by_the_thread_pool_only_without_async(tokenizer_dir, judge_yaml, name):
    problems = ArithTask().problems("train", POOL + 8)
    texts = [wrong_at(p, k % 4) for p in problems for k in range(G)][: 2 * POOL]
    info = scores_through_verl(tokenizer_dir, judge_yaml, name, problems, texts, wait_s=1.0)
    assert sum(r["judged"] for r in info) == len(texts) == sum(BatchRecordingJudge.batches)
    if name == "compute_score":
        assert max(BatchRecordingJudge.batches) <= POOL  # a waiting call holds one of verl's threads
    else:
        assert max(BatchRecordingJudge.batches) > POOL

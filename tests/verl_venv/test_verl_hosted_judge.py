"""A judge model hosted by verl: ``compute_score`` through verl's ``RewardLoopWorker`` with
``reward.reward_model.enable=True`` gets ``reward_router_address`` and asks the judge through verl's own
router (``NaiveRouter``, the FastAPI proxy verl launches in front of its vLLM/SGLang judge servers),
here in front of an OpenAI-compatible server the test starts on loopback. The verdicts are the
server's answers, read with sgpo's prompt, parser and failure rules; no server address is configured."""

import asyncio
import multiprocessing
import time

import httpx
import pytest
import torch
from fixtures_server import FakeServer, Response, completion, free_port
from hydra import compose, initialize_config_dir
from test_verl_estimator import G, scenario
from test_verl_reward import CONFIG_DIR, agent_loop_batch
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker, migrate_legacy_reward_impl
from verl.experimental.reward_loop.router.naive_router import run_router

from sgpo.core import graded_reward
from sgpo.integrations.verl.estimator import UNKNOWN_SCORE
from sgpo.judges.prompts import DEFAULT_SYSTEM
from sgpo.models.policies import arith_tokenizer


def answer(i, body):
    """The judge's verdict: step 1 (or 0 for a one-step response), whatever the steps say; for the
    problem it cannot read, a reply without a boxed index."""
    user = body["messages"][-1]["content"]
    if "sum of the digits" in user:
        return Response(body=completion("I cannot tell."))
    return Response(body=completion(f"\\boxed{{{min(1, user.count('<step_') - 1)}}}"))


@pytest.fixture()
def hosted_judge():
    """verl's router on loopback in front of the fake judge server; yields (router address, server)."""
    with FakeServer(answer) as server:
        port = free_port()
        backend = server.base_url.removesuffix("/v1")
        router = multiprocessing.get_context("spawn").Process(target=run_router, args=("127.0.0.1", port, [backend]),
                                                                daemon=True)
        router.start()
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert router.is_alive() and time.monotonic() < deadline, "verl's router did not start"
                time.sleep(0.3)
            server.requests.clear()
            yield f"127.0.0.1:{port}", server
        finally:
            router.terminate()
            router.join(10)


def hosted_config(tokenizer_dir, *extra):
    overrides = [
        "algorithm.adv_estimator=sgpo",
        f"actor_rollout_ref.model.path={tokenizer_dir}",
        "reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward",
        "reward.custom_reward_function.name=compute_score",
        "reward.reward_model.enable=True", "reward.reward_model.enable_resource_pool=True",  # its own GPUs: streamed
        f"reward.reward_model.model_path={tokenizer_dir}",  # verl loads the judge's tokenizer from here
        *extra,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return migrate_legacy_reward_impl(compose(config_name="ppo_trainer", overrides=overrides))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    arith_tokenizer().save_pretrained(path)
    return path


def test_compute_score_judges_with_the_verl_hosted_model(tokenizer_dir, tmp_path, hosted_judge):
    router, server = hosted_judge
    dead = free_port()  # a configured server address is not used: the router replaces it
    judge_yaml = tmp_path / "judge.yaml"
    judge_yaml.write_text(f"judge:\n  http: {{base_url: 'http://127.0.0.1:{dead}/v1', max_retries: 0}}\n"
                          "  llm: {max_tokens: 77}\n")
    cfg = hosted_config(tokenizer_dir, f"+reward.custom_reward_function.reward_kwargs.judge_config={judge_yaml}",
                        "+reward.custom_reward_function.reward_kwargs.task=arith")
    problems, texts = scenario()
    data = agent_loop_batch(arith_tokenizer(), problems, texts)

    async def main():
        worker = RewardLoopWorker(cfg, reward_router_address=router)  # what RewardLoopManager starts
        assert worker.reward_model_tokenizer is not None
        return await worker.compute_score_batch(data)

    info = [o["reward_extra_info"] for o in asyncio.run(main())]
    judged = [i for i, r in enumerate(info) if r["judged"]]
    # every wrong response with steps went to the hosted judge, once, with sgpo's prompt
    assert len(server.requests) == len(judged) > 0
    assert all(body["model"] == "fake-model" and body["max_tokens"] == 77 for body in server.requests)
    assert all(body["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM} for body in server.requests)
    assert all("<step_0>" in body["messages"][-1]["content"] for body in server.requests)
    # and the verdicts are the server's: step 1 everywhere (the rule judge would say 0, 1, 2, 3 for group 0) ...
    readable = [i for i in judged if i // G != 3]
    assert [info[i]["first_error"] for i in readable] == [min(1, info[i]["n_steps"] - 1) for i in readable]
    assert [info[i]["first_error"] for i in range(4)] == [1, 1, 1, 1]
    for i in readable:
        rts = torch.tensor([info[i]["first_error"] / info[i]["n_steps"]])
        assert info[i]["score"] == pytest.approx(float(graded_reward(rts, "logistic")[0]))
        assert info[i]["judge_status"] == "ok"
    # ... read with sgpo's failure rules: an answer without an index is an unknown reward, not an exception
    unreadable = [i for i in judged if i // G == 3]
    assert unreadable and all(info[i]["judge_status"] == "invalid" and info[i]["score"] == UNKNOWN_SCORE
                              for i in unreadable)
    assert all(r["score"] == 1.0 for r in info if r["acc"] == 1.0)

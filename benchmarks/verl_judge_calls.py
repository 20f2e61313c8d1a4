"""Judge calls per step on verl's reward-loop path, against a.P.G (the calls SGPO needs).

Run in the verl environment (``scripts/verl_env.sh`` builds it) on rollouts files of the arithmetic
task (``sgpo rollout``); each file is one step's batch of P groups of G responses:

    ~/.cache/sgpo/verl-venv/bin/python benchmarks/verl_judge_calls.py warmup.jsonl trained.jsonl

Each batch goes through verl's ``RewardLoopWorker`` (the class of verl's reward-loop Ray actors), one
call per response, all in flight at once as verl's agent loop streams them: first with verl's
``naive`` reward manager (``compute_score`` judges every wrong response), then with sgpo's
``SGPORewardManager`` (the group board on a local Ray actor). The judge is the exact rule judge, so
the counts are the judge calls a model judge would get. Prints one JSON object per file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def verl_batch(records, G, tokenizer):
    """The rows verl's agent loop hands the reward loop: left-padded prompts, right-padded responses."""
    from verl import DataProto

    prompt_ids = [tokenizer(r.problem)["input_ids"] for r in records]
    response_ids = [tokenizer(r.response)["input_ids"] + [tokenizer.eos_token_id] for r in records]
    P, R, n = max(map(len, prompt_ids)), max(map(len, response_ids)), len(records)
    prompts, responses = torch.full((n, P), tokenizer.pad_token_id), torch.full((n, R), tokenizer.pad_token_id)
    mask = torch.zeros(n, P + R, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        prompts[i, P - len(p):], responses[i, :len(r)] = torch.tensor(p), torch.tensor(r)
        mask[i, P - len(p):P + len(r)] = 1
    column = lambda values: np.array(values, dtype=object)  # noqa: E731
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask,
                 "input_ids": torch.cat([prompts, responses], dim=1)},
        non_tensors={
            "data_source": column(["sgpo/arith"] * n),
            "reward_model": column([{"ground_truth": r.answer} for r in records]),
            "extra_info": column([{"question": r.problem, "reference": r.reference, "split": "train"} for r in records]),
            "uid": column([f"g{r.group}" for r in records]),
            "session_id": column([r.sample for r in records]),
        })


def config(tokenizer_dir, judge_yaml, G, manager):
    import verl
    from hydra import compose, initialize_config_dir
    from verl.experimental.reward_loop.reward_loop import migrate_legacy_reward_impl

    overrides = [
        "algorithm.adv_estimator=sgpo", f"actor_rollout_ref.model.path={tokenizer_dir}", f"actor_rollout_ref.rollout.n={G}",
        "reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward",
        f"+reward.custom_reward_function.reward_kwargs.judge_config={judge_yaml}",
        "+reward.custom_reward_function.reward_kwargs.group_wait_s=120",
    ]
    if manager == "sgpo":
        overrides += ["reward.reward_manager.source=importlib", "reward.reward_manager.name=SGPORewardManager",
                      "reward.reward_manager.module.path=pkg://sgpo.integrations.verl.manager"]
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        return migrate_legacy_reward_impl(compose(config_name="ppo_trainer", overrides=overrides))


def score(cfg, data):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    async def main():
        worker = RewardLoopWorker(cfg)
        return await asyncio.gather(*(worker.compute_score(data[i:i + 1]) for i in range(len(data))))

    start = time.perf_counter()
    out = [o["reward_extra_info"] for o in asyncio.run(main())]
    return out, time.perf_counter() - start


def measure(path: Path, tokenizer_dir: Path, judge_yaml: Path) -> dict:
    from sgpo.core import classify_groups
    from sgpo.models.policies import arith_tokenizer
    from sgpo.rollouts.file import read_rollouts

    rollouts = read_rollouts(path)
    G, records = rollouts.group_size, rollouts.records()
    data = verl_batch(records, G, arith_tokenizer())
    result = {"file": str(path), "P": len(rollouts.groups), "G": G}
    for manager in ("naive", "sgpo"):
        info, seconds = score(config(tokenizer_dir, judge_yaml, G, manager), data)
        outcomes = torch.tensor([r["acc"] for r in info]).view(-1, G)
        kinds = classify_groups(outcomes)
        wrong_in_all_negative = int((outcomes[kinds.all_negative] == 0).sum())
        result.update({
            "accuracy": outcomes.mean().item(), "all_negative_frac": kinds.all_negative.float().mean().item(),
            "aPG": wrong_in_all_negative, "wrong": int((outcomes == 0).sum()),
            f"calls_{manager}": sum(r["judged"] for r in info), f"seconds_{manager}": round(seconds, 2),
        })
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rollouts", nargs="+", type=Path, help="rollouts files of the arithmetic task (sgpo rollout)")
    args = parser.parse_args(argv)
    import ray

    from sgpo.models.policies import arith_tokenizer

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=80 * 1024 * 1024)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            arith_tokenizer().save_pretrained(tmp)
            judge_yaml = Path(tmp) / "judge.yaml"
            judge_yaml.write_text("judge:\n  kind: rule\n  cache: false\n")
            for path in args.rollouts:
                print(json.dumps(measure(path, Path(tmp), judge_yaml)), flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

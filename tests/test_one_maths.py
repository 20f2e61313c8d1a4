"""One maths, three paths: the native grading step, TRL's SGPOTrainer and verl's `sgpo` estimator
give identical rewards and advantages on the same outcomes and verdicts.

The responses are written by hand from arithmetic reference solutions (right, wrong from step k,
empty), so every group kind and every verdict kind occurs: all-negative groups with graded
rewards, a mixed group whose wrong answers keep 0, an all-positive group, and a response with no
steps (a failed verdict: an unknown reward, the failure rule of docs/metrics.md). Each path runs its real code: the rule
judge and the arithmetic verifier; TRL's own GRPOTrainer step (the responses enter through TRL's
``rollout_func``); verl's ``compute_score`` and the estimator's tensor function (verl's own
``compute_advantage`` around it is tested in tests/verl_venv, in verl's environment).
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from datasets import Dataset

from sgpo.core import ShapingParams, known_rewards
from sgpo.grading import GradingSettings, grade
from sgpo.integrations.trl import TRL_EPS, SGPOConfig, SGPOTrainer
from sgpo.integrations.verl.estimator import sgpo_verl_advantages
from sgpo.integrations.verl.reward import compute_score
from sgpo.models.policies import arith_tokenizer, tiny_policy
from sgpo.tasks.arith import ArithRuleJudge, ArithSpec, ArithTask

G = 4
TASK = ArithTask(ArithSpec(n_ops=3, ops=("add", "sub")))
PROBLEMS = TASK.problems("train", 4)


def wrong_from(problem, k: int) -> str:
    """The reference solution with step k's result off by one (so the answer is wrong too)."""
    lines = problem.reference.split("\n")
    head, value = lines[k].rsplit("= ", 1)
    lines[k] = f"{head}= {int(value) + 1}"
    lines[-1] = f"Answer: {int(problem.answer) + 1}"
    return "\n".join(lines)


def responses() -> list[str]:
    p = PROBLEMS
    right = [q.reference for q in p]
    return [
        wrong_from(p[0], 0), wrong_from(p[0], 1), wrong_from(p[0], 2), "",  # all-negative, one without steps
        right[1], wrong_from(p[1], 1), wrong_from(p[1], 0), right[1],  # mixed: wrong answers keep 0
        wrong_from(p[2], 2), wrong_from(p[2], 1), wrong_from(p[2], 1), wrong_from(p[2], 0),  # all-negative
        right[3], right[3], right[3], right[3],  # all-positive
    ]


TEXTS = responses()
OUTCOMES = torch.tensor([TASK.verify(t, PROBLEMS[i // G]) for i, t in enumerate(TEXTS)]).view(-1, G)
SETTINGS = GradingSettings("sgpo", ShapingParams(eps=TRL_EPS), step_mode="line")


@pytest.fixture(scope="module")
def native():
    assert OUTCOMES.sum(dim=1).tolist() == [0, 2, 0, 4]
    return grade(PROBLEMS, TEXTS, OUTCOMES, SETTINGS, ArithRuleJudge())


def test_the_native_grading_step_sees_every_kind(native):
    unknown = ~known_rewards(OUTCOMES, native.verdict_ok, "all_negative")
    assert unknown.nonzero().tolist() == [[0, 3]]  # the empty response
    assert native.rewards[1].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert (0 < native.rewards[[0, 2]][native.verdict_ok[[0, 2]]]).all()
    assert len(set(native.rewards[0, :3].tolist())) == 3  # first errors at steps 0, 1, 2 rank in that order
    assert native.advantages[0, 0] < native.advantages[0, 1] < native.advantages[0, 2]
    assert native.advantages[0, 3] == 0 and (native.advantages[3] == 0).all()


def test_verl_gives_the_same_rewards_and_advantages(native):
    scores = []
    for i, text in enumerate(TEXTS):
        p = PROBLEMS[i // G]
        out = compute_score("sgpo/arith", text, p.answer, {"question": p.question, "reference": p.reference})
        assert out["acc"] == float(OUTCOMES.view(-1)[i])
        scores.append(out["score"])
    # verl's batch holds groups in any order: shuffle the rows, group them by uid, and put them back.
    order = list(range(len(TEXTS)))
    random.Random(0).shuffle(order)
    T = 5
    token_rewards = torch.zeros(len(TEXTS), T)
    mask = torch.ones(len(TEXTS), T)
    for row, i in enumerate(order):
        length = 2 + i % 3
        mask[row, length:] = 0
        token_rewards[row, length - 1] = scores[i]  # verl puts the score on the last response token
    uids = [f"uid-{i // G}" for i in order]
    out = sgpo_verl_advantages(token_rewards, mask, uids, eps=TRL_EPS)
    back = torch.empty(len(TEXTS))
    back[order] = out.advantages[:, 0]
    assert back.tolist() == pytest.approx(native.advantages.reshape(-1).tolist(), abs=1e-6)
    known = known_rewards(OUTCOMES, native.verdict_ok, "all_negative").reshape(-1)
    rewards = torch.empty(len(TEXTS))
    rewards[order] = out.rewards
    assert rewards[known].tolist() == pytest.approx(native.rewards.reshape(-1)[known].tolist(), abs=1e-6)


def test_trl_gives_the_same_rewards_and_advantages(native, tmp_path):
    tok = arith_tokenizer()
    prompts = [p.question + "\n" for p in PROBLEMS]
    ids = {p: tok(p, add_special_tokens=False)["input_ids"] for p in prompts}
    served: dict[str, int] = {}

    def rollout(batch_prompts, trainer):
        """TRL's rollout_func: each prompt's G hand-written responses, in order."""
        out = {"prompt_ids": [], "completion_ids": [], "logprobs": []}
        for p in batch_prompts:
            g = prompts.index(p)
            j = served.get(p, 0) % G
            served[p] = j + 1
            completion = tok(TEXTS[g * G + j], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            out["prompt_ids"].append(ids[p])
            out["completion_ids"].append(completion)
            out["logprobs"].append([0.0] * len(completion))
        return out

    by_prompt = {p.question + "\n": p for p in PROBLEMS}

    def correct(prompts, completions, **_):
        return [TASK.verify(c, by_prompt[p]) for p, c in zip(prompts, completions)]

    args = SGPOConfig(output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=16, num_generations=G,
                      max_completion_length=64, max_steps=1, report_to="none", save_strategy="no",
                      gradient_checkpointing=False, sgpo_step_mode="line")
    ds = Dataset.from_list([{"prompt": p, "problem": q.question, "reference": q.reference, "answer": q.answer}
                            for p, q in zip(prompts, PROBLEMS)])
    trainer = SGPOTrainer(tiny_policy(tok, n_layers=1, d_model=32, n_heads=2), reward_funcs=[correct], args=args,
                          train_dataset=ds, processing_class=tok, judge=ArithRuleJudge(), rollout_func=rollout)
    trainer.train()
    logged_prompts = list(trainer._logs["prompt"])
    assert len(logged_prompts) == 16 and list(trainer._logs["completion"]) != []
    for start in range(0, 16, G):  # TRL's batch order: groups of G consecutive rows, prompts shuffled
        g = prompts.index(logged_prompts[start])
        assert list(trainer._logs["completion"])[start : start + G] == TEXTS[g * G : (g + 1) * G]
        rewards = list(trainer._logs["rewards"]["correct"])[start : start + G]
        advantages = list(trainer._logs["advantages"])[start : start + G]
        known = known_rewards(OUTCOMES, native.verdict_ok, "all_negative")[g]
        expected = torch.where(known, native.rewards[g], torch.nan).tolist()
        assert rewards == pytest.approx(expected, abs=1e-6, nan_ok=True)
        assert advantages == pytest.approx(native.advantages[g].tolist(), abs=1e-5)
    assert not math.isnan(sum(trainer._logs["advantages"]))

"""Held-out evaluation of the policy during training: greedy accuracy and avg@k / pass@k."""

from __future__ import annotations

import torch

from sgpo.sampling.rollout import generate
from sgpo.train.config import Config
from sgpo.train.runtime import sampling_precision


@torch.no_grad()
def evaluate(policy, tokenizer, prompt, task, problems: list, cfg: Config, step: int, device: torch.device) -> dict:
    """Greedy accuracy and avg@k / pass@k of ``policy`` on ``problems``, without touching the training RNG.

    ``prompt``: question -> prompt text. The samples are drawn under a seed of their own
    (``cfg.train.seed``, ``step``), so the same policy at the same step scores the same.
    """
    prompts = [prompt(p.question) for p in problems]
    k, r = cfg.train.eval_k, cfg.rollout
    # manual_seed below re-seeds every device, so every device whose generator training uses is forked.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.train.seed * 31 + step)
        with sampling_precision(cfg, policy, device):
            greedy = generate(policy, tokenizer, prompts, n=1, max_new_tokens=r.max_new_tokens, greedy=True, sampler=r.sampler)
            sampled = generate(policy, tokenizer, prompts, n=k, temperature=r.temperature, top_p=r.top_p,
                               max_new_tokens=r.max_new_tokens, sampler=r.sampler)
    correct = torch.tensor([task.verify(t, p) for t, p in zip(greedy.texts, problems)])
    per_sample = torch.tensor([task.verify(t, problems[i // k]) for i, t in enumerate(sampled.texts)]).view(-1, k)
    return {
        "eval/accuracy": correct.mean().item(),
        f"eval/avg@{k}": per_sample.mean().item(),
        f"eval/pass@{k}": per_sample.max(dim=1).values.mean().item(),
    }


__all__ = ["evaluate"]

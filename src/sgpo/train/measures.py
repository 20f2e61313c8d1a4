"""What the trainer measures and records besides the loss: held-out evaluation, the sampling
correction's size and the ``samples.jsonl`` records of a step."""

from __future__ import annotations

import torch

from sgpo.grading import Graded
from sgpo.sampling.rollout import Rollout, generate, resolve_sampler, token_logprobs_chunked
from sgpo.train.config import Config
from sgpo.train.setup import autocast


def sampling_precision(cfg: Config, policy, device: torch.device):
    """The context sampling runs in: the KV-cache sampler takes bf16 autocast with ``train.bf16``, so
    its matmuls are the training forward's; ``generate`` (``hf``) samples in the weights' dtype."""
    return autocast(device, cfg.train.bf16 and resolve_sampler(cfg.rollout.sampler, policy) == "kv")


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


def sample_records(step: int, problems: list, texts: list[str], outcomes: torch.Tensor, shaped: Graded, n: int) -> list[dict]:
    """The first ``n`` responses of a step as ``samples.jsonl`` rows. outcomes: [N, G]."""
    G = outcomes.shape[1]
    records = []
    for i in range(min(n, len(texts))):
        v = shaped.verdicts.get(i)
        records.append({
            "step": step,
            "prompt": problems[i // G].question,
            "completion": texts[i],
            "outcome": outcomes.view(-1)[i].item(),
            "verdict": None if v is None else {"first_error": v.first_error, "n_steps": v.n_steps, "status": v.status},
            "reward": shaped.rewards.view(-1)[i].item(),
            "advantage": shaped.advantages.view(-1)[i].item(),
        })
    return records


def is_ratio_stats(ratios: list[torch.Tensor], cap: float) -> dict:
    """``sampling/is_ratio_*`` of the importance ratios exp(logp_train - logp_sample) of the trained
    tokens (a list of 1-D tensors, before truncation at ``cap``); {} when there are none."""
    r = torch.cat(ratios) if ratios else torch.zeros(0)
    if not r.numel():
        return {}
    return {"sampling/is_ratio_mean": r.mean().item(), "sampling/is_ratio_min": r.min().item(),
            "sampling/is_ratio_max": r.max().item(), "sampling/is_clipped_frac": (r > cap).float().mean().item()}


@torch.no_grad()
def no_update(policy, rollout: Rollout, cfg: Config, device: torch.device) -> dict:
    """The update's metrics for a step that trains on nothing (e.g. DAPO kept no group): the
    same names, so every row of metrics.jsonl has them."""
    entropy = rollout.sample_entropy
    if entropy is None:
        with autocast(device, cfg.train.bf16):
            _, entropy = token_logprobs_chunked(policy, rollout, cfg.rollout.temperature, cfg.optim.mini_batch_size,
                                                with_entropy=True)
    mask = rollout.response_mask.to(entropy.device).float()
    entropy = ((entropy * mask).sum() / mask.sum().clamp(min=1)).item()
    return {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0, "entropy": entropy}

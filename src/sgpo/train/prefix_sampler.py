"""The live policy as the :class:`sgpo.judges.montecarlo.PrefixSampler` of the Monte-Carlo judge.

Infrastructure (a model, ``generate``) kept out of the estimator: the trainer builds one over the
policy it trains and binds it to every rollout judge in the judge's wrapper chain.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch

from sgpo.judges.base import JudgeRequest, wrapper_chain
from sgpo.sampling.rollout import generate


class PolicyPrefixSampler:
    """Completes (request, prefix) pairs with ``policy``: the prompt of the request's problem, then
    the prefix, then up to ``max_new_tokens`` sampled tokens.

    Sampling uses an RNG of its own (seeded by ``seed`` and the number of calls so far, inside a
    forked torch RNG), so judging does not move the training sampler's random stream and a
    resumed run continues it from :meth:`state_dict`.
    """

    def __init__(self, policy, tokenizer, prompt: Callable[[str], str], max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, batch_size: int = 512, sampler: str = "auto", seed: int = 0, precision=None):
        self.policy, self.tokenizer, self.prompt = policy, tokenizer, prompt
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.batch_size, self.sampler, self.seed, self.calls = batch_size, sampler, seed, 0
        self.precision = precision  # () -> context manager the trainer samples in (bf16 autocast), or None

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = int(state.get("calls", 0))

    @torch.no_grad()
    def complete(self, items: list[tuple[JudgeRequest, str]], n: int) -> list[tuple[list[str], int]]:
        """``n`` completions of each prefix and the tokens sampled for them (greedy when temperature is 0:
        one completion, repeated ``n`` times, costing its tokens once)."""
        greedy = self.temperature <= 0
        draws = 1 if greedy else n
        prompts = [self.prompt(r.problem) + prefix for r, prefix in items]
        per_call = max(1, self.batch_size // draws)
        device = next(self.policy.parameters()).device
        texts: list[str] = []
        tokens: list[int] = []
        was_training = self.policy.training
        self.policy.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed * 1_000_003 + self.calls)
            self.calls += 1
            for start in range(0, len(prompts), per_call):
                chunk = prompts[start : start + per_call]
                ctx = self.precision() if self.precision is not None else nullcontext()
                with ctx:
                    out = generate(self.policy, self.tokenizer, chunk, n=draws, temperature=max(self.temperature, 1e-6),
                                   top_p=self.top_p, max_new_tokens=self.max_new_tokens, greedy=greedy, sampler=self.sampler)
                texts += out.texts
                tokens += out.response_mask.sum(dim=1).tolist()
        if was_training:
            self.policy.train()
        result = []
        for i in range(len(items)):
            got = texts[i * draws : (i + 1) * draws]
            result.append((got * n if greedy else got, int(sum(tokens[i * draws : (i + 1) * draws]))))
        return result


def bind_policy(judge, sampler: PolicyPrefixSampler) -> int:
    """Bind ``sampler`` to every judge in ``judge``'s wrapper chain that takes one (``.bind``); how many did."""
    takers = [node for node in wrapper_chain(judge) if callable(getattr(node, "bind", None))]
    for node in takers:
        node.bind(sampler)
    return len(takers)


def bind_rollout_judge(judge, cfg, policy, tokenizer, prompt, device) -> int:
    """Bind a sampler over the trained ``policy`` (settings from ``cfg.judge.rollout``, sampling as the
    trainer does) to the rollout judges in ``judge``'s chain; how many were bound (0 for other kinds)."""
    from sgpo.train.runtime import sampling_precision

    ro = cfg.judge.rollout
    sampler = PolicyPrefixSampler(policy, tokenizer, prompt, ro.max_new_tokens or cfg.rollout.max_new_tokens, ro.temperature,
                                  cfg.rollout.top_p, ro.batch_size, cfg.rollout.sampler, ro.seed,
                                  precision=lambda: sampling_precision(cfg, policy, device))
    return bind_policy(judge, sampler)

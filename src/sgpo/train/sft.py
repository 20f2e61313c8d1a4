"""Supervised warm-up: teach a policy the solution format, with only partial competence.

RL from a random tiny model learns nothing (every group is all-negative and nothing can be
judged), so the policy first imitates reference solutions in which, with probability
``noise_p``, a line's result is wrong and the chain goes on from the wrong value. The warmed-up
policy writes well-formed solutions that are often wrong at some step: the regime SGPO is for.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
from pathlib import Path

import torch

from sgpo.errors import ConfigError
from sgpo.models.policies import apply_lora, arith_tokenizer, load_policy, save_policy, tiny_policy
from sgpo.tasks.arith import Chain, apply
from sgpo.tasks.base import Problem
from sgpo.train.config import Config
from sgpo.train.guard import UpdateGuard
from sgpo.train.runtime import autocast, optimizer_step, prompt_for, task_for


def corrupt_solution(problem: Problem, noise_p: float, rng: random.Random) -> str:
    """The reference solution with each line's result wrong with probability ``noise_p``.

    Later lines continue from the wrong value, so the text stays a consistent chain whose first
    error is the first corrupted line; the answer line repeats the (possibly wrong) final value.
    """
    chain = Chain.parse(problem.question)
    value, lines = chain.start, []
    for op, b in chain.ops:
        result = apply(value, op, b)
        if rng.random() < noise_p:
            result += rng.choice([-1, 1]) * rng.randint(1, max(2, abs(result) // 10 + 2))
        lines.append(f"{value} {op} {b} = {result}")
        value = result
    return "\n".join(lines + [f"Answer: {value}"])


def sft_train(model, tokenizer, problems: list[Problem], cfg: Config, device: torch.device) -> list[float]:
    """Train on (prompt, noisy reference) pairs; loss on response tokens only. Returns losses."""
    w = cfg.warmup
    rng = random.Random(w.seed)
    torch.manual_seed(w.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=w.lr, weight_decay=0.01)
    warm = max(1, w.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, w.steps))))
    )
    prompt = prompt_for(cfg, task_for(cfg), tokenizer)
    # Arithmetic references can be corrupted line by line; other tasks train on their references as written.
    if cfg.task.name == "arith":
        def solution(p: Problem) -> str:
            return corrupt_solution(p, w.noise_p, rng)
    else:
        def solution(p: Problem) -> str:
            return p.reference
    model.train()
    losses = []
    guard = UpdateGuard(cfg.train.max_skipped_steps, "warm-up")
    for step in range(1, w.steps + 1):
        batch = rng.sample(problems, min(w.batch_size, len(problems)))
        prompts = [prompt(p.question) for p in batch]
        targets = [solution(p) + tokenizer.eos_token for p in batch]
        enc = tokenizer([p + t for p, t in zip(prompts, targets)], return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_lens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        labels = ids.masked_fill(mask == 0, -100)
        pad = (mask == 0).sum(dim=1)
        for i, n in enumerate(prompt_lens):
            labels[i, : pad[i] + n] = -100
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        with autocast(device, cfg.train.bf16):
            loss = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, labels=labels).loss
        losses.append(optimizer_step(model, opt, sched, loss, guard=guard, step=step))
    model.eval()
    return losses


def warmup_key(cfg: Config) -> str:
    """A hash of everything that shapes the warmed-up policy."""
    shaping = {
        "task": cfg.task.model_dump(),
        # LoRA adapters are added, and dropout disabled, after the warm-up: neither shapes it.
        "model": cfg.model.model_dump(exclude={k for k in type(cfg.model).model_fields
                                               if k.startswith("lora_") or k == "disable_dropout"}),
        "warmup": cfg.warmup.model_dump(exclude={"cache_dir"}),
        "bf16": cfg.train.bf16,
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def initial_policy(cfg: Config, device: torch.device, log=print, lora: bool = True):
    """The policy RL starts from: ``model.path``, or the tiny model, warmed up if ``warmup.steps``,
    then wrapped in LoRA adapters if ``model.lora_r > 0`` and ``lora`` (the adapters start as the
    identity, so ``lora=False`` gives the same function: a frozen reference, the rollout sampler).

    A warmed-up policy is cached under ``warmup.cache_dir`` and reused by every run with the same
    task, model and warm-up settings (so `sgpo compare` warms up once for all methods).
    """
    model, tokenizer = _base_policy(cfg, device, log)
    m = cfg.model
    if lora and m.lora_r > 0:
        model = apply_lora(model, m.lora_r, m.lora_alpha, m.lora_dropout, m.lora_target_modules, seed=cfg.train.seed)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log(f"LoRA r={m.lora_r}: {n_train:,} of {sum(p.numel() for p in model.parameters()):,} parameters train")
    if m.disable_dropout:
        disable_dropout(model)
    return model.to(device), tokenizer


def disable_dropout(model) -> None:
    """Every dropout of ``model`` to 0: ``nn.Dropout`` modules and the attention dropout rate that
    Hugging Face attention modules read from their config at build time."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
    if hasattr(getattr(model, "config", None), "attention_dropout"):
        model.config.attention_dropout = 0.0


def _base_policy(cfg: Config, device: torch.device, log=print):
    """``model.path`` or the tiny model, warmed up (or taken from the warm-up cache) if ``warmup.steps``."""
    if cfg.model.path is None:
        tokenizer = arith_tokenizer()
        model = tiny_policy(tokenizer, cfg.model.arch, cfg.model.n_layers, cfg.model.d_model, cfg.model.n_heads, seed=cfg.warmup.seed)
    else:
        model, tokenizer = load_policy(cfg.model.path, key="model.path")
    if cfg.warmup.steps == 0:
        return model.to(device), tokenizer
    cached = Path(cfg.warmup.cache_dir).expanduser() / warmup_key(cfg)
    if (cached / "config.json").is_file():
        log(f"warm-up: reusing {cached}")
        model, tokenizer = load_policy(cached)
        return model.to(device), tokenizer
    if cfg.warmup.noise_p > 0 and cfg.task.name != "arith":
        raise ConfigError("warmup.noise_p > 0 is only defined for task.name=arith")
    problems = task_for(cfg).problems("train", cfg.task.n_train)
    log(f"warm-up: {cfg.warmup.steps} supervised steps (noise_p={cfg.warmup.noise_p}) -> {cached}")
    model.to(device)
    losses = sft_train(model, tokenizer, problems, cfg, device)
    log(f"warm-up: final loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
    # Another run may be warming up the same policy at once: write privately, first rename wins.
    tmp = cached.with_name(f"{cached.name}.tmp-{os.getpid()}")
    save_policy(model, tokenizer, tmp)
    try:
        tmp.rename(cached)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    # As if loaded from the cache: LoRA checkpoints name this directory as their base model.
    model.name_or_path = model.config._name_or_path = str(cached)
    return model, tokenizer

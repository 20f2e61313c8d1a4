"""What a run needs around its model, shared by the trainer, the warm-up, judge training and
compare: seeding, the device, bf16 autocast (for training forwards and for sampling), the guarded
optimizer step, the prompt; and, for now, building the configured task."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from sgpo.errors import ConfigError
from sgpo.sampling.rollout import format_prompt, resolve_sampler
from sgpo.tasks import Task, make_task
from sgpo.tasks.arith import ArithSpec
from sgpo.tasks.problem_files import Fields
from sgpo.train.config import Config
from sgpo.train.guard import UpdateGuard, guarded_step


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(cfg: Config) -> torch.device:
    if cfg.train.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available; use train.device=cpu or auto")
    return torch.device(cfg.train.device)


def optimizer_step(model, optimizer, scheduler, loss: torch.Tensor, grad_clip: float = 1.0,
                   guard: UpdateGuard | None = None, step: int = 0) -> float:
    """Backward ``loss``, clip the gradient norm, step the optimizer and schedule; returns the loss.
    A non-finite loss or gradient steps nothing (:mod:`sgpo.train.guard`); ``guard`` counts it as
    step ``step`` and stops the loop after too many in a row."""
    loss.backward()
    value = loss.item()
    applied, _ = guarded_step(list(model.parameters()), optimizer, scheduler, value, grad_clip)
    if guard is not None:
        guard.end_step(step, not applied)
    return value


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return True


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast for forward passes; a no-op context when disabled."""
    if not enabled or not bf16_supported(device):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def sampling_precision(cfg: Config, policy, device: torch.device):
    """The context sampling runs in: the KV-cache sampler takes bf16 autocast with ``train.bf16``, so
    its matmuls are the training forward's; ``generate`` (``hf``) samples in the weights' dtype."""
    return autocast(device, cfg.train.bf16 and resolve_sampler(cfg.rollout.sampler, policy) == "kv")


def prompt_for(cfg: Config, task, tokenizer):
    """question -> prompt text, with the configured (or the task's default) system prompt and template."""
    system = cfg.task.system_prompt if cfg.task.system_prompt is not None else task.system_prompt
    return lambda question: format_prompt(question, tokenizer, system, cfg.task.prompt_template)


def task_for(cfg: Config) -> Task:
    """The config's task, built by :func:`sgpo.tasks.make_task` (``task:`` and, for math, ``data:``)."""
    t, d = cfg.task, cfg.data
    return make_task(t.name, arith=ArithSpec(t.n_ops, t.start_max, t.operand_max, t.factor_max, tuple(t.ops), t.value_max),
                     seed=t.seed, train_files=d.train_files, eval_files=d.eval_files,
                     fields=Fields(d.problem_field, d.answer_field, d.reference_field, d.id_field),
                     answer_extraction=t.answer_extraction, verify_timeout_s=t.verify_timeout_s)

"""Where a training step's groups come from: sampled from the policy (online,
:class:`SampledBatches`) or read from a rollouts file (offline, :class:`StoredBatches`). Both are
a :class:`BatchSource`: the trainer's seeded :class:`PromptStream` picks indices, the source turns
them into a :class:`Batch`, and the step goes on the same way: judge -> rewards and advantages -> update.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import torch

from sgpo.errors import ConfigError
from sgpo.grading import usable
from sgpo.judges.base import Verdict
from sgpo.rollouts.file import RolloutRecord, RolloutsError, RolloutsFile, field_error, read_rollouts, tokenizer_fingerprint
from sgpo.sampling.rollout import Rollout, generate, layout, to_device
from sgpo.tasks.base import Problem
from sgpo.tasks.steps import split_steps
from sgpo.train.config import Config
from sgpo.train.runtime import sampling_precision


class PromptStream:
    """An endless, seeded order over the training problems; its state is one integer."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.position = n, seed, 0

    def take(self, k: int) -> list[int]:
        out = []
        for _ in range(k):
            epoch, i = divmod(self.position, self.n)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            out.append(int(torch.randperm(self.n, generator=g)[i]))
            self.position += 1
        return out


@dataclass
class Batch:
    """N groups of G responses, prompt-major (response i belongs to problem i // G)."""

    problems: list[Problem]
    """[N] the groups' problems."""
    rollout: Rollout
    """N * G sequences."""
    outcomes: torch.Tensor
    """[N, G] verifier outcomes in {0, 1}."""
    behaviour_logp: torch.Tensor | None = None
    """[N * G, T] log-probs of the policy that sampled the responses (offline); None: the current
    policy sampled them, and the update takes its own log-probs before the first step."""
    verdicts: list[Verdict | None] | None = None
    """[N * G] stored verdicts (offline; None where a response was not judged)."""


class BatchSource(Protocol):
    """N groups of G responses for the indices the trainer's :class:`PromptStream` picks, so the
    stream's position in a checkpoint is all a resumed run needs to get the same batches."""

    sample_seconds: float
    """Seconds the last :meth:`take` spent sampling (0 for stored responses)."""

    def __len__(self) -> int:
        """How many prompts (groups) the indices range over."""

    def take(self, indices: list[int]) -> Batch:
        """The batch of the prompts at ``indices``, in that order."""


class SampledBatches:
    """Groups sampled from the policy and verified by the task (``train.mode=online``).

    Args:
        problems: the training problems the indices point into.
        policy, tokenizer: the model sampled from (put in eval mode to sample).
        task: verifies each response (``task.verify(text, problem)``).
        prompt: question -> prompt text.
        cfg: ``rollout.group_size``, ``temperature``, ``top_p``, ``max_new_tokens``, ``sampler``;
            ``train.bf16`` (the sampling precision).
        device: where the policy is.
    """

    def __init__(self, problems: list[Problem], policy, tokenizer, task, prompt, cfg: Config, device: torch.device):
        self.problems, self.policy, self.tokenizer, self.task, self.prompt = problems, policy, tokenizer, task, prompt
        self.cfg, self.device = cfg, device
        self.sample_seconds = 0.0

    def __len__(self) -> int:
        return len(self.problems)

    def take(self, indices: list[int]) -> Batch:
        r = self.cfg.rollout
        G = r.group_size
        problems = [self.problems[i] for i in indices]
        self.policy.eval()
        t0 = time.perf_counter()
        with sampling_precision(self.cfg, self.policy, self.device):
            rollout = generate(self.policy, self.tokenizer, [self.prompt(p.question) for p in problems], n=G,
                               temperature=r.temperature, top_p=r.top_p, max_new_tokens=r.max_new_tokens, sampler=r.sampler)
        self.sample_seconds = time.perf_counter() - t0  # the step's time/generate without the answer checks
        outcomes = torch.tensor([self.task.verify(text, problems[i // G]) for i, text in enumerate(rollout.texts)]).view(-1, G)
        return Batch(problems, rollout, outcomes)


class StoredBatches:
    """Groups of a rollouts file (``train.mode=offline``), read and checked against the run's
    config before any warm-up; :meth:`attach` then checks them against the run's tokenizer, after
    which :meth:`take` lays them out with its padding on the run's device.
    """

    sample_seconds = 0.0  # nothing is sampled

    def __init__(self, cfg: Config, log=print):
        if cfg.data.rollouts is None:
            raise ConfigError("train.mode=offline needs a rollouts file: data.rollouts=FILE (written by `sgpo rollout`)")
        self.file: RolloutsFile = read_rollouts(cfg.data.rollouts, log=lambda m: log(f"warning: {m}"))
        if not self.file.groups:
            raise RolloutsError(f"{self.file.path}: no complete group of responses to train on")
        self.cfg = cfg
        self.pad_id, self.device = None, torch.device("cpu")
        log(
            f"offline: {len(self.file.groups)} groups of {self.file.group_size} from {self.file.path}"
            + (f" ({self.file.dropped_groups} incomplete group(s) dropped)" if self.file.dropped_groups else "")
        )

    def __len__(self) -> int:
        return len(self.file.groups)

    @property
    def fingerprint(self) -> str:
        return self.file.sha256

    def attach(self, tokenizer, step_mode: str, device: torch.device | str = "cpu", log=print) -> None:
        """Check the file against the configured tokenizer, group size and temperature, and, with
        token-unit RTS, that stored verdicts count the steps as this run splits them; then
        :meth:`take` pads with ``tokenizer``'s pad token and puts the sequences on ``device``."""
        cfg = self.cfg
        check_compatible(self.file, tokenizer, cfg.rollout.group_size, cfg.rollout.temperature)
        if cfg.algorithm.rts_unit == "tokens":
            for group in self.file.groups:
                for r in group:
                    if usable(r.verdict):
                        K = len(split_steps(r.response, step_mode, cfg.judge.max_steps))
                        if K != r.verdict.n_steps:
                            raise RolloutsError(
                                f"{self.file.path}:{r.line}: field 'verdict.n_steps': is {r.verdict.n_steps} but this run "
                                f"splits the response into {K} steps (step mode {step_mode!r}, judge.max_steps="
                                f"{cfg.judge.max_steps}); use the judge.max_steps the file was judged with"
                            )
        h = self.file.header
        if h.get("logprob_precision") not in (None, "bf16" if cfg.train.bf16 else "float32"):
            log(
                f"warning: {self.file.path}: behaviour log-probs were computed in {h['logprob_precision']} but this run "
                f"computes log-probs with train.bf16={cfg.train.bf16}; importance ratios start off 1 by that rounding"
            )
        self.pad_id, self.device = tokenizer.pad_token_id, torch.device(device)

    def missing_verdicts(self, scope_mask) -> int:
        """Responses in the judging scope with no stored verdict. ``scope_mask``: [N, G] outcomes -> [N, G] bool."""
        missing = 0
        for group in self.file.groups:
            outcomes = torch.tensor([[r.outcome for r in group]])
            for r, needed in zip(group, scope_mask(outcomes)[0].tolist()):
                missing += needed and r.verdict is None
        return missing

    def take(self, groups: list[int]) -> Batch:
        """The batch of the file's groups at ``groups`` (in that order), with their behaviour
        log-probs and stored verdicts. Needs :meth:`attach` first."""
        if self.pad_id is None:
            raise RuntimeError("StoredBatches.take before attach: the batch layout needs the run's tokenizer")
        records = [r for g in groups for r in self.file.groups[g]]
        # The layout the behaviour log-probs were computed in, so bf16 recomputes them exactly.
        h = self.file.header
        rollout, logp = pack(records, self.pad_id, h.get("prompt_width"), h.get("response_width"))
        rollout = to_device(rollout, self.device)
        G = self.file.group_size
        outcomes = torch.tensor([r.outcome for r in records]).view(-1, G)
        problems = [self.file.groups[g][0].problem_obj for g in groups]
        return Batch(problems, rollout, outcomes, logp, [r.verdict for r in records])


def check_compatible(rf: RolloutsFile, tokenizer, group_size: int, temperature: float) -> None:
    """Raise :class:`RolloutsError` (file:line: field) unless the file can be trained on as configured.

    The header's group size and temperature must match the config (the behaviour log-probs are at
    the sampling temperature), its tokenizer fingerprint must match the configured tokenizer's,
    every token id must be in the vocabulary, and each group's prompt_ids must be what the
    tokenizer makes of its prompt.
    """
    head = f"{rf.path}:1"
    h = rf.header
    if h["group_size"] != group_size:
        raise field_error(head, "group_size", f"is {h['group_size']} but rollout.group_size={group_size}; set rollout.group_size={h['group_size']}")
    if not math.isclose(float(h["temperature"]), temperature, rel_tol=0, abs_tol=1e-9):
        raise field_error(
            head, "temperature",
            f"is {h['temperature']} but rollout.temperature={temperature}; the stored log-probs are at the sampling "
            f"temperature, so set rollout.temperature={h['temperature']}",
        )
    mine = tokenizer_fingerprint(tokenizer)
    theirs = h.get("tokenizer")
    if theirs is not None and theirs.get("fingerprint") != mine["fingerprint"]:
        raise field_error(
            head, "tokenizer",
            f"written with tokenizer {theirs.get('name')!r} (vocab {theirs.get('vocab_size')}, fingerprint "
            f"{theirs.get('fingerprint')}) but the configured model's is {mine['name']!r} (vocab {mine['vocab_size']}, "
            f"fingerprint {mine['fingerprint']}); train with the model that wrote the file, or roll out again",
        )
    vocab = len(tokenizer)
    for group in rf.groups:
        for r in group:
            for name in ("prompt_ids", "response_ids"):
                top = max(getattr(r, name))
                if top >= vocab:
                    raise field_error(f"{rf.path}:{r.line}", name, f"token id {top} is outside the configured tokenizer's vocabulary ({vocab})")
        first = group[0]
        if tokenizer(first.prompt, add_special_tokens=False)["input_ids"] != first.prompt_ids:
            raise field_error(f"{rf.path}:{first.line}", "prompt_ids", "is not what the configured tokenizer makes of 'prompt'")


def pack(
    records: list[RolloutRecord], pad_id: int, prompt_width: int | None = None, response_width: int | None = None
) -> tuple[Rollout, torch.Tensor]:
    """Stored responses in the trainer's batch layout (:func:`layout`), with their behaviour log-probs.

    Returns:
        rollout: B sequences.
        logprobs: [B, T] float32 behaviour log-probs, 0 on padding.
    """
    rollout = layout([r.prompt_ids for r in records], [r.response_ids for r in records], [r.response for r in records],
                     pad_id, prompt_width, response_width)
    logprobs = torch.zeros(rollout.response_mask.shape, dtype=torch.float32)
    for b, r in enumerate(records):
        logprobs[b, : len(r.logprobs)] = torch.tensor(r.logprobs, dtype=torch.float32)
    return rollout, logprobs


__all__ = ["Batch", "BatchSource", "PromptStream", "SampledBatches", "StoredBatches", "check_compatible", "pack"]

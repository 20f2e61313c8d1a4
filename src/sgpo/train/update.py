"""The policy update of one RL step, as functions: a rollout and its advantages in, metrics out.

:func:`update_policy` is the whole update the native trainer runs; the pieces it is made of are
public so that each can be checked on its own:

1. :func:`old_logprobs` — the old (behaviour) log-probs of the importance ratio, and the entropy;
2. :func:`reference_logprobs` — the frozen reference's log-probs, for the KL term;
3. :func:`ppo_epochs` — mu epochs of clipped policy-gradient steps over shuffled mini-batches,
   each mini-batch's loss from :func:`mini_batch_loss` over its :func:`active_rows`, rescaled by
   :func:`loss_share`, each optimizer step through :func:`sgpo.train.guard.guarded_step` (a
   non-finite loss or gradient steps nothing and ends the update);
4. :func:`update_metrics` — the ``loss``, ``kl``, ``clip_frac``, ``grad_norm``, ``entropy``,
   ``sampling/*`` and ``offline/*`` numbers of the step.

A step that trains on nothing (DAPO kept no group) reports the same names through :func:`no_update`.

Shapes: B sequences (the rows trained on), T response positions. Every function takes the run's
:class:`~sgpo.train.config.Config` for its settings (temperature, mini-batch size, clip range, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sgpo.core import PolicyLoss, policy_loss
from sgpo.sampling.rollout import Rollout, token_logprobs, token_logprobs_chunked
from sgpo.train.config import Config
from sgpo.train.guard import guarded_step
from sgpo.train.runtime import autocast


@dataclass
class OldLogprobs:
    """What the update knows of the policy before its first step."""

    current: torch.Tensor | None
    """[B, T] the policy's own log-probs before the update; None when no forward pass took them."""
    old: torch.Tensor | None
    """[B, T] the old log-probs of the importance ratio; None: each mini-batch's forward, detached."""
    entropy: torch.Tensor | None
    """[B, T] the policy's entropy at each response position (the sampler's where it reported one);
    None: the training forwards measure it on the rows they train."""


def needs_old_pass(n_rows: int, cfg: Config, behaviour_logp: torch.Tensor | None = None) -> bool:
    """Whether the old log-probs need a forward pass of their own before the first step.

    Not with one epoch of one mini-batch of on-policy rows: the policy has not moved when the loss
    is taken, so the update forward's own log-probs, detached, are the old ones (ratio 1, gradient
    the policy gradient, as TRL does). Stored behaviour log-probs (``behaviour_logp``, offline)
    always take the pass: the gap between them and the policy is a metric.
    """
    return behaviour_logp is not None or cfg.optim.ppo_epochs > 1 or n_rows > cfg.optim.mini_batch_size


def old_logprobs(policy, rollout: Rollout, cfg: Config, device: torch.device,
                 behaviour_logp: torch.Tensor | None = None) -> OldLogprobs:
    """The old log-probs of the importance ratio and the entropy, before any step.

    Args:
        policy: the model being trained.
        rollout: B sequences.
        cfg: ``rollout.temperature``, ``train.bf16``, ``optim.mini_batch_size`` (the chunk of the
            forward pass), ``optim.ppo_epochs``.
        device: where the policy is (autocast's device type).
        behaviour_logp: [B, T] log-probs of the policy that sampled the responses (offline); None:
            the current policy sampled them and its own log-probs are the old ones.
    """
    entropy = rollout.sample_entropy  # the sampler's, where it reports one: over every response, at no cost
    if not needs_old_pass(len(rollout.texts), cfg, behaviour_logp):
        return OldLogprobs(None, None, entropy)
    with autocast(device, cfg.train.bf16):
        current, ent = token_logprobs_chunked(policy, rollout, cfg.rollout.temperature, cfg.optim.mini_batch_size,
                                              with_entropy=entropy is None)
    entropy = ent if entropy is None else entropy
    old = current if behaviour_logp is None else behaviour_logp.to(current.device)
    return OldLogprobs(current, old, entropy)


def reference_logprobs(ref, rollout: Rollout, cfg: Config, device: torch.device) -> torch.Tensor | None:
    """[B, T] log-probs of ``rollout``'s responses under the frozen reference ``ref``; None without one."""
    with autocast(device, cfg.train.bf16):
        return token_logprobs_chunked(ref, rollout, cfg.rollout.temperature, cfg.optim.mini_batch_size)[0] if ref is not None else None


def active_rows(idx: torch.Tensor, advantages: torch.Tensor, with_kl: bool) -> torch.Tensor:
    """The rows of mini-batch ``idx`` ([M] long) that go through the model.

    A response with zero advantage adds exactly nothing to the clipped surrogate, so without a KL
    term (``with_kl``) it is left out; :func:`loss_share` then rescales the loss so the gradient is
    the full mini-batch's. ``advantages``: [B]. Returns [M'] long, M' <= M, in ``idx``'s order.
    """
    return idx if with_kl else idx[advantages[idx] != 0]


def loss_share(mask: torch.Tensor, active: torch.Tensor, idx: torch.Tensor, aggregation: str) -> torch.Tensor:
    """The factor that turns the loss over the ``active`` rows into the loss over all of ``idx``.

    The loss of the active rows is a mean over their tokens (``token_mean``) or sequences (the
    other aggregations); the left-out rows add zero to the sum, so the full mini-batch's mean is
    this share of it. ``mask``: [B, T] response mask; ``active``, ``idx``: [M'], [M] long. Returns a scalar.
    """
    if aggregation == "token_mean":
        return mask[active].sum() / mask[idx].sum().clamp(min=1)
    return torch.tensor(len(active) / len(idx))


def sampling_correction(old_logp: torch.Tensor, sample_logp: torch.Tensor, mask: torch.Tensor,
                        cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated importance weights for a sampler whose log-probs differ from the trainer's (bf16).

    Args:
        old_logp: [B, T] the trainer's log-probs of the sampled tokens.
        sample_logp: [B, T] the sampler's log-probs of the same tokens.
        mask: [B, T] response mask.
        cap: the truncation (``rollout.is_cap``).

    Returns:
        weights: [B, T] min(exp(old_logp - sample_logp), cap), float32.
        ratios: [n] the untruncated ratios of the n response tokens, for :func:`is_ratio_stats`.
    """
    weights = torch.exp((old_logp.float() - sample_logp).clamp(max=20.0))
    return weights.clamp(max=cap), weights[mask.bool()]


@dataclass
class MiniBatchLoss:
    """One mini-batch's loss, from :func:`mini_batch_loss`."""

    out: PolicyLoss
    """The loss over the rows given, with its KL and clip fraction."""
    is_ratios: torch.Tensor | None
    """[n] untruncated sampling ratios of the rows' response tokens; None without the correction."""
    entropy: torch.Tensor | None
    """[B, T] entropy from the forward pass (no gradient), if asked for."""


def mini_batch_loss(policy, rollout: Rollout, advantages: torch.Tensor, mask: torch.Tensor, cfg: Config,
                    device: torch.device, old_logp: torch.Tensor | None = None, ref_logp: torch.Tensor | None = None,
                    sample_logp: torch.Tensor | None = None, with_entropy: bool = False) -> MiniBatchLoss:
    """The clipped policy-gradient loss of B rows, with a graph back to ``policy``'s weights.

    Args:
        rollout: the B sequences.
        advantages: [B] one advantage per sequence.
        mask: [B, T] response mask, on ``device``.
        cfg: ``algorithm.eps_low``, ``eps_high``, ``aggregation``, ``beta_kl``,
            ``rollout.max_new_tokens`` (the norm of ``seq_mean_token_sum_norm``), ``rollout.is_cap``,
            ``rollout.temperature``, ``train.bf16``.
        old_logp: [B, T] old log-probs; None: the forward's own, detached (ratio 1).
        ref_logp: [B, T] reference log-probs, with ``algorithm.beta_kl`` > 0.
        sample_logp: [B, T] the sampler's log-probs, on ``device``; given, each token's loss is
            weighted by :func:`sampling_correction`.
        with_entropy: also return the forward's entropy.
    """
    alg = cfg.algorithm
    with autocast(device, cfg.train.bf16):
        logp, ent = token_logprobs(policy, rollout, cfg.rollout.temperature, with_entropy=with_entropy)
    old_logp = logp.detach() if old_logp is None else old_logp
    weights = ratios = None
    if sample_logp is not None:
        weights, ratios = sampling_correction(old_logp, sample_logp, mask, cfg.rollout.is_cap)
    out = policy_loss(logp, old_logp, advantages.to(device), mask, alg.eps_low, alg.eps_high, alg.aggregation,
                      ref_logp=ref_logp, beta_kl=alg.beta_kl, norm=cfg.rollout.max_new_tokens, token_weights=weights)
    return MiniBatchLoss(out, ratios, ent)


@dataclass
class EpochStats:
    """What :func:`ppo_epochs` saw, one entry per optimizer step (``loss``, ``grad_norm``) or per
    mini-batch that went through the model (``kl``, ``clip_frac``, ``is_ratios``, ``entropy``)."""

    stats: dict[str, list[float]] = field(default_factory=lambda: {"loss": [], "kl": [], "clip_frac": [], "grad_norm": []})
    """``loss`` (rescaled by the share), ``kl``, ``clip_frac``, ``grad_norm`` (before clipping)."""
    is_ratios: list[torch.Tensor] = field(default_factory=list)
    """[n] sampling ratios per mini-batch (with the sampling correction)."""
    entropy: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    """([M', T] entropy, [M', T] float mask) per mini-batch, when the forwards measured it."""
    applied: bool = True
    """False: a non-finite loss or gradient skipped the step (and ended the update)."""


def ppo_epochs(policy, optimizer, scheduler, rollout: Rollout, advantages: torch.Tensor, cfg: Config,
               device: torch.device, step: int, old: OldLogprobs, ref_logp: torch.Tensor | None = None,
               behaviour_logp: torch.Tensor | None = None) -> EpochStats:
    """``optim.ppo_epochs`` epochs of clipped policy-gradient steps over shuffled mini-batches.

    Each epoch shuffles the B rows (a generator seeded by ``train.seed`` and ``step``, so a resumed
    run shuffles alike) into mini-batches of ``optim.mini_batch_size``; each mini-batch is one
    optimizer step, over its :func:`active_rows` only. A mini-batch with no active row steps with
    zero gradients (not None), so AdamW steps exactly as it would on the full batch. The first
    step whose loss or gradient is not finite steps nothing and ends the update: its later
    mini-batches would meet the same values.

    Args:
        policy, optimizer, scheduler: what is trained; the optimizer's parameters are the ones stepped.
        rollout: B sequences; advantages: [B].
        step: the 0-based RL step (seeds the shuffle).
        old: from :func:`old_logprobs`.
        ref_logp: [B, T] from :func:`reference_logprobs`; given, every row is active (the KL term
            has a gradient on every row).
        behaviour_logp: [B, T] stored behaviour log-probs, if any: then the stored file, not a
            sampler, is the behaviour policy and no sampling correction applies.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sampled = rollout.sample_logp if cfg.rollout.is_cap > 0 and behaviour_logp is None else None
    mask_all = rollout.response_mask.to(device)
    B, mb = len(rollout.texts), cfg.optim.mini_batch_size
    policy.train()
    seen = EpochStats()
    stats = seen.stats
    shuffle = torch.Generator().manual_seed(cfg.train.seed * 104_729 + step)
    for _ in range(cfg.optim.ppo_epochs):
        for idx in torch.randperm(B, generator=shuffle).split(mb):
            active = active_rows(idx, advantages, with_kl=ref_logp is not None)
            if len(active):
                part = mini_batch_loss(
                    policy, rollout.select(active), advantages[active], mask_all[active], cfg, device,
                    old_logp=None if old.old is None else old.old[active],
                    ref_logp=ref_logp[active] if ref_logp is not None else None,
                    sample_logp=sampled[active].to(device) if sampled is not None else None,
                    with_entropy=old.entropy is None,
                )
                if part.is_ratios is not None:
                    seen.is_ratios.append(part.is_ratios)
                if part.entropy is not None:
                    seen.entropy.append((part.entropy.detach(), mask_all[active].float()))
                loss = part.out.loss * loss_share(mask_all, active, idx, cfg.algorithm.aggregation)
                loss.backward()
                stats["loss"].append(loss.item())
                stats["kl"].append(part.out.kl.item())
                stats["clip_frac"].append(part.out.clip_frac.item())
            else:
                for p in params:
                    p.grad = torch.zeros_like(p)
                stats["loss"].append(0.0)
            seen.applied, grad_norm = guarded_step(params, optimizer, scheduler, stats["loss"][-1], cfg.optim.grad_clip)
            stats["grad_norm"].append(grad_norm)
            if not seen.applied:
                break
        else:
            continue
        break
    policy.eval()
    return seen


def update_metrics(seen: EpochStats, old: OldLogprobs, mask: torch.Tensor, cfg: Config,
                   behaviour_logp: torch.Tensor | None = None) -> dict:
    """The update's metrics: means over its steps of ``loss``, ``kl``, ``clip_frac``, ``grad_norm``;
    ``entropy`` (over every response where the sampler or the old-log-prob pass measured it, else
    over the rows trained on); ``sampling/*`` (:func:`is_ratio_stats`); with ``behaviour_logp``,
    ``offline/logp_gap_*``, how far the policy had moved from the one that sampled the data; and
    ``skipped`` (a non-finite loss or gradient stepped nothing). ``mask``: [B, T] response mask."""
    maskf = mask.float()
    metrics = {k: sum(v) / len(v) for k, v in seen.stats.items() if v}
    entropy = old.entropy
    if entropy is None and seen.entropy:
        entropy, maskf = (torch.cat([t[i] for t in seen.entropy]) for i in (0, 1))
    if entropy is not None:
        metrics["entropy"] = masked_mean(entropy.to(maskf.device), maskf)
    metrics.update(is_ratio_stats(seen.is_ratios, cfg.rollout.is_cap))
    if behaviour_logp is not None:
        gap = (old.current.float() - old.old.float()).abs()
        metrics["offline/logp_gap_mean"] = masked_mean(gap, maskf)
        metrics["offline/logp_gap_max"] = (gap * maskf).max().item()
    metrics.setdefault("entropy", 0.0)
    metrics.setdefault("kl", 0.0)
    metrics.setdefault("clip_frac", 0.0)
    metrics["skipped"] = not seen.applied
    return metrics


def update_policy(policy, optimizer, scheduler, rollout: Rollout, advantages: torch.Tensor, cfg: Config, *,
                  step: int, device: torch.device, ref=None, behaviour_logp: torch.Tensor | None = None) -> dict:
    """The whole update of one RL step: old and reference log-probs, then :func:`ppo_epochs`.

    Args:
        policy: the model trained (left in eval mode).
        optimizer, scheduler: step once per mini-batch whose loss and gradient are finite.
        rollout: the B sequences trained on.
        advantages: [B] one advantage per sequence.
        cfg: the run's config.
        step: the 0-based RL step (seeds the mini-batch shuffle).
        device: where the policy is.
        ref: the frozen reference model of the KL term (``algorithm.beta_kl`` > 0), or None.
        behaviour_logp: [B, T] log-probs of the policy that sampled the responses (offline),
            used as the old log-probs; None (online): the current policy's.

    Returns the :func:`update_metrics`.
    """
    old = old_logprobs(policy, rollout, cfg, device, behaviour_logp)
    ref_logp = reference_logprobs(ref, rollout, cfg, device)
    seen = ppo_epochs(policy, optimizer, scheduler, rollout, advantages, cfg, device, step, old, ref_logp, behaviour_logp)
    return update_metrics(seen, old, rollout.response_mask.to(device), cfg, behaviour_logp)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``x`` [B, T] over the response tokens of ``mask`` [B, T] (float); 0 without any."""
    return ((x * mask).sum() / mask.sum().clamp(min=1)).item()


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
    same names, so every row of metrics.jsonl has them. ``rollout``: the step's sequences (entropy)."""
    entropy = rollout.sample_entropy
    if entropy is None:
        with autocast(device, cfg.train.bf16):
            _, entropy = token_logprobs_chunked(policy, rollout, cfg.rollout.temperature, cfg.optim.mini_batch_size,
                                                with_entropy=True)
    return {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0,
            "entropy": masked_mean(entropy, rollout.response_mask.to(entropy.device).float())}


__all__ = [
    "EpochStats", "MiniBatchLoss", "OldLogprobs", "active_rows", "is_ratio_stats", "loss_share", "mini_batch_loss",
    "needs_old_pass", "no_update", "old_logprobs", "ppo_epochs", "reference_logprobs", "sampling_correction",
    "update_metrics", "update_policy",
]

"""The ``sgpo`` advantage estimator for verl, as a pure tensor function (this module never imports verl).

verl scores each response on its own (``reward.custom_reward_function``), before the groups are
known, so :mod:`sgpo.integrations.verl.reward` grades *every* wrong response the method would grade
in some group: its score is 1 for a correct response, the method's graded reward in [0, 1) for a
graded wrong one (f(RTS) for ``sgpo``, f(a drawn RTS) for ``random``), 0 for a wrong one the method
does not grade, and :data:`UNKNOWN_SCORE` (negative) for a wrong one without a usable grade (a failed
verdict, no steps). This estimator sees the whole batch with the group uids and hands it, per size
of group, to ``sgpo.core.shape_graded`` -- the function the native methods call::

    score_i = sum_t token_level_rewards[i, t]           (verl puts the score on the last token)
    o_i     = is_correct(score_i)                        (sgpo.core: correct iff score == 1)
    ok_i    = score_i >= 0                               (a usable grade, or none was needed)
    r, known, A = shape_graded(o, score, ok, params)     (per [n, G] bucket of groups sharing a uid)
    advantages[i, t] = A_i * response_mask[i, t]

so the advantages equal those of ``sgpo.grading.grade`` (the native trainer) on the same outcomes
and grades. ``algorithm.sgpo.method`` picks the method: any registered one that only changes
rewards (``sgpo.core.Method.reward_only``: ``sgpo``, ``random``, ``grpo``, or one of your own);
``dapo`` and ``ngrpo`` are refused (:func:`verl_method`). The statistics are
``sgpo.grading.grading_stats``'s. The verl registration (``algorithm.adv_estimator=sgpo``) is in
:mod:`sgpo.integrations.verl.plugin`.

Groups are the rows sharing an ``index`` (verl's ``uid``) value, wherever they sit in the batch.
Groups of different sizes are handled: groups are bucketed by size and each bucket goes through
``shape_graded`` as an [n, G] tensor (a group of one row has no signal and gets 0). Only
``scale='batch'`` needs equal sizes (one batch std over [N, G]) and refuses unequal ones.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from sgpo.core import METHODS, Method, ShapingParams, is_correct, judge_mask, shape_graded
from sgpo.errors import ConfigError
from sgpo.grading import GradingSettings, grading_stats, judged_mask, merge_grading_stats

#: The estimator's name in verl's registry (``algorithm.adv_estimator=sgpo``).
NAME = "sgpo"
#: The score of a wrong response that has no usable grade: its reward is unknown.
#: Every real reward is >= 0, so any negative score reads as unknown; small, so that verl's own
#: score metrics (critic/score/mean, ...) barely move. Outside the method's scope such a response is
#: not graded at all, so the estimator gives it its outcome 0, a known reward, as the native trainer does.
UNKNOWN_SCORE = -1e-3
#: The option that picks the method on the estimator's side (the reward function has ``reward_kwargs.method``).
METHOD_KEY = f"algorithm.{NAME}.method"


def verl_methods() -> list[str]:
    """The registered methods verl can run: those that only change rewards (``Method.reward_only``)."""
    return [name for name in METHODS if METHODS.get(name).reward_only]


def verl_method(name: str, key: str = METHOD_KEY) -> Method:
    """The registered method ``name`` if verl can run it, else a one-line :class:`ConfigError` naming ``key``.

    verl's reward function scores one response at a time and verl computes the advantages from those
    scores, so only a method whose advantages are its group-normalised per-response rewards fits.
    """
    choices = ", ".join(verl_methods())
    if name not in METHODS:
        raise ConfigError(f"{key}={name!r} is not a registered method; verl runs: {choices}")
    method = METHODS.get(name)
    if not method.reward_only:
        why = ("over-samples prompts to replace the groups it drops (in verl, DAPO's dynamic sampling is "
               "algorithm.filter_groups)" if method.oversamples else "computes its own advantages, not "
               "group-normalised rewards" if method.own_advantages else "is not registered with reward_only=True "
               "(its rewards must depend on each response alone)")
        raise ConfigError(f"{key}={name}: verl runs only methods that change rewards ({choices}); {name} {why}")
    if not _advantages_are_shaped(method):
        raise ConfigError(f"{key}={name}: registered with reward_only=True, but its advantages are not the "
                          "group-normalised rewards (sgpo.core.shape_graded of its own rewards), which is all verl computes")
    return method


@functools.cache  # per registered method: the estimator looks its method up on every step
def _advantages_are_shaped(method: Method) -> bool:
    """Does ``method`` keep every group and give ``shape_graded``'s advantages of its own rewards, on a
    fixed batch of mixed and all-negative groups? A cheap check of what ``reward_only`` declares."""
    g = torch.Generator().manual_seed(0)
    outcomes = (torch.rand(16, 4, generator=g) < 0.3).float()
    rts, ok = torch.rand(16, 4, generator=g), torch.rand(16, 4, generator=g) < 0.8
    for params in (ShapingParams(), ShapingParams(scope="all_incorrect", scale="none")):
        out = method(outcomes, rts=rts, verdict_ok=ok, params=params, generator=torch.Generator().manual_seed(1))
        known = out.known if out.known is not None else torch.ones_like(ok)
        want = shape_graded(outcomes, out.rewards, known, params)
        if not bool(out.keep.all()) or not torch.allclose(out.advantages, want.advantages, atol=1e-6):
            return False
    return True


class VerlAdvantages(NamedTuple):
    advantages: torch.Tensor
    """[B, T] float32 advantages, A_i broadcast over the response tokens (0 on padding)."""
    rewards: torch.Tensor
    """[B] float32 rewards after the method's scope (graded only in scope, else the outcome)."""
    known: torch.Tensor
    """[B] bool, the reward is known (False: in scope without a usable grade; advantage 0)."""
    outcomes: torch.Tensor
    """[B] float32 outcomes in {0, 1} (score == 1)."""
    stats: dict[str, float]
    """Batch statistics (see :func:`sgpo_verl_advantages`)."""


def group_rows(index: Sequence[Hashable]) -> list[list[int]]:
    """Row positions of each group, groups in order of first appearance, rows in batch order.

    ``index``: [B] group ids (verl's ``uid`` array; any hashable values).
    """
    groups: dict[Hashable, list[int]] = {}
    for row, uid in enumerate(index):
        groups.setdefault(uid.item() if hasattr(uid, "item") else uid, []).append(row)
    return list(groups.values())


def sgpo_verl_advantages(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Sequence[Hashable],
    scope: str = "all_negative",
    scale: str = "group",
    eps: float = 1e-6,
    method: str = "sgpo",
) -> VerlAdvantages:
    """Advantages of a reward-only method from verl's per-token rewards and group ids.

    Args:
        token_level_rewards: [B, T] verl's ``token_level_rewards`` (the score on the response's last
            token, 0 elsewhere); a row's score is its sum.
        response_mask: [B, T] 1 on response tokens.
        index: [B] group ids (verl's ``uid``); rows with equal ids form a group, in any order.
        scope: ``all_negative`` (graded rewards kept only in all-negative groups) or
            ``all_incorrect`` (kept for every wrong response); see ``sgpo.core.judge_mask``.
        scale: ``group`` (divide by the group std), ``none`` (Dr. GRPO) or ``batch``.
        eps: added to the std.
        method: a registered method that only changes rewards (:func:`verl_method`). One that grades
            nothing (``grpo``) reads every score as its outcome.

    Returns:
        :class:`VerlAdvantages`. ``stats`` are ``sgpo.grading.grading_stats``'s (without
        ``sgpo/rts_mean``: the estimator sees rewards, not RTS) and the judge cost of scoring one
        response at a time: ``sgpo/verl_extra_judged`` (for a judging method, the wrong responses
        outside the scope: the reward function sent each of them that had a step to the judge, and
        their grade is dropped here) and ``sgpo/verl_dropped_grades`` (wrong responses whose score
        was a usable grade that differs from their outcome and was set back to it).
    """
    spec = verl_method(method, "method")
    params = ShapingParams(scope=scope, scale=scale, eps=eps)
    settings = GradingSettings(method, params)
    if token_level_rewards.dim() != 2 or token_level_rewards.shape != response_mask.shape:
        raise ValueError(
            f"token_level_rewards and response_mask must both be [B, T]; got {tuple(token_level_rewards.shape)} "
            f"and {tuple(response_mask.shape)}"
        )
    B = token_level_rewards.shape[0]
    if len(index) != B:
        raise ValueError(f"index has {len(index)} group ids for a batch of {B} responses")
    scores = token_level_rewards.detach().float().sum(dim=-1).cpu()
    groups = group_rows(index)
    by_size: dict[int, list[list[int]]] = {}
    for rows in groups:
        by_size.setdefault(len(rows), []).append(rows)
    if scale == "batch" and len(by_size) > 1:
        raise ValueError(
            f"scale='batch' needs groups of equal size; this batch has groups of sizes {sorted(by_size)}"
        )

    rewards, outcomes, adv = torch.zeros(B), torch.zeros(B), torch.zeros(B)
    known_all = torch.ones(B, dtype=torch.bool)
    parts, extra, dropped = [], 0, 0
    for rows in by_size.values():
        ids = torch.tensor(rows)  # [n, G]
        s = scores[ids]
        o = is_correct(s).float()
        ok = s >= 0
        if spec.grades:
            out = shape_graded(o, s, ok, params)
        else:  # as natively: nothing graded, every reward is the outcome and known, whatever the score says
            out = shape_graded(o, o, torch.ones_like(ok), params)
        rewards[ids], outcomes[ids], adv[ids], known_all[ids] = out.rewards, o, out.advantages, out.known
        parts.append((grading_stats(o, out, judged_mask(o, settings), ok), len(rows), ids.numel()))
        wrong = ~is_correct(o)
        if spec.judges:
            extra += int((wrong & ~judge_mask(o, scope)).sum())
        dropped += int((wrong & ok & (s != out.rewards)).sum())

    stats = {**merge_grading_stats(parts), "sgpo/verl_extra_judged": extra, "sgpo/verl_dropped_grades": dropped}
    mask = response_mask.to(device=token_level_rewards.device, dtype=torch.float32)
    advantages = adv.to(mask.device).unsqueeze(-1) * mask
    return VerlAdvantages(advantages, rewards, known_all, outcomes, stats)


def session_rows(keys: Sequence[str]) -> tuple[list[int], list[int]]:
    """The sessions of verl's v1 batch: its final outputs, and the session of every row.

    ``keys``: [B] verl v1 row keys ``{uid}_{session_id}_{index}`` (``agent_loop_tq``: one session per
    sample of ``rollout.n``; an agent loop may return several outputs per session, ``index`` 0, 1, ...).

    Returns ``final`` ([S] the row of each session's last output, sessions in order of first
    appearance) and ``session`` ([B] each row's position in ``final``) -- the selection verl's
    ``compute_advantage_for_multi_trajectories`` makes for GRPO.
    """
    last: dict[str, tuple[int, int]] = {}  # session key -> (output index, row)
    of_row = []
    for row, key in enumerate(keys):
        fields = str(key).rsplit("_", 2)
        if len(fields) != 3 or not fields[2].lstrip("-").isdigit():
            raise ValueError(f"verl batch key {key!r} is not '{{uid}}_{{session_id}}_{{index}}'")
        session, index = f"{fields[0]}_{fields[1]}", int(fields[2])
        of_row.append(session)
        if session not in last or last[session][0] < index:
            last[session] = (index, row)
    position = {session: i for i, session in enumerate(last)}
    return [row for _, row in last.values()], [position[s] for s in of_row]


#: ``algorithm.filter_groups.metric`` values that read the graded reward: ``reward`` (verl's summed
#: ``rm_scores``) and ``score`` (the reward function's field of the same number).
FILTER_METRICS = ("reward", "score")


def _get(config: Any, key: str, default: Any = None) -> Any:
    if config is None:
        return default
    if isinstance(config, Mapping) or hasattr(config, "get"):
        value = config.get(key, default)
    else:
        value = getattr(config, key, default)
    return default if value is None else value


def options_from_config(config: Any, norm_adv_by_std_in_grpo: bool | None = None) -> dict[str, Any]:
    """``method``, ``scope``, ``scale`` and ``eps`` for :func:`sgpo_verl_advantages` from verl's ``algorithm`` config.

    ``norm_adv_by_std_in_grpo`` (verl's own key, default True) picks ``scale='group'`` or ``'none'``;
    an optional ``algorithm.sgpo`` section (``+algorithm.sgpo.scope=all_incorrect`` on the command
    line) may set ``method`` (default ``sgpo``; one verl can run, :func:`verl_method`), ``scope``,
    ``scale`` and ``eps``. ``algorithm.use_kl_in_reward=True`` is refused:
    it subtracts a KL penalty from the token rewards, so their sum is no longer the score that
    tells a correct response (1) from a graded wrong one. ``algorithm.filter_groups`` (DAPO's dynamic
    sampling, v1 trainer) must filter on the graded reward (``metric`` in :data:`FILTER_METRICS`):
    on ``acc`` it would evict every all-negative group. Refusals raise :class:`ConfigError`.
    """
    if _get(config, "use_kl_in_reward", False):
        raise ConfigError(
            "algorithm.adv_estimator=sgpo needs algorithm.use_kl_in_reward=False: the in-reward KL penalty changes "
            "the summed token rewards, so a correct response (score 1) can no longer be told from a graded wrong "
            "one; use the actor's KL loss instead (actor_rollout_ref.actor.use_kl_loss=True)"
        )
    filter_groups = _get(config, "filter_groups", None)
    metric = _get(filter_groups, "metric", "reward")
    if _get(filter_groups, "enable", False) and metric not in FILTER_METRICS:
        raise ConfigError(
            f"algorithm.adv_estimator=sgpo refuses algorithm.filter_groups.metric={metric}: verl evicts every group "
            f"whose {metric} is the same across its responses, so every all-negative group -- the groups SGPO grades -- "
            "is thrown away; filter on the graded reward (algorithm.filter_groups.metric=reward) or disable filter_groups"
        )
    norm = norm_adv_by_std_in_grpo if norm_adv_by_std_in_grpo is not None else _get(config, "norm_adv_by_std_in_grpo", True)
    section = _get(config, NAME, {}) or {}
    unknown = set(section) - {"method", "scope", "scale", "eps"}
    if unknown:
        raise ConfigError(f"unknown keys in algorithm.{NAME}: {sorted(unknown)}; valid: eps, method, scale, scope")
    method = str(section.get("method", "sgpo"))
    verl_method(method)
    return {
        "method": method,
        "scope": section.get("scope", "all_negative"),
        "scale": section.get("scale", "group" if norm else "none"),
        "eps": float(section.get("eps", 1e-6)),
    }


__all__ = ["FILTER_METRICS", "METHOD_KEY", "NAME", "UNKNOWN_SCORE", "VerlAdvantages", "group_rows", "options_from_config",
           "session_rows", "sgpo_verl_advantages", "verl_method", "verl_methods"]

"""A verl reward manager that sends the step judge only the wrong responses of all-negative groups.

    reward.reward_manager.source=importlib
    reward.reward_manager.name=SGPORewardManager
    reward.reward_manager.module.path=pkg://sgpo.integrations.verl.manager
    +reward.custom_reward_function.reward_kwargs.group_wait_s=300

verl's reward loop scores each session on its own, on a randomly chosen reward worker, as soon as
the session ends, and tells ``compute_score`` nothing about the group. A reward manager does see
the row's ``uid`` (the prompt) and ``session_id``, and verl's config (``rollout.n``). This one, a
subclass of verl's ``NaiveRewardManager``, scores in two passes:

1. ``compute_score`` verifies the response (``extra_info[DEFER_KEY]``): a correct one scores 1 and a
   wrong one that would be judged comes back ``deferred``;
2. the outcome goes to a :class:`GroupBoard` (one named Ray actor shared by every reward worker),
   keyed by ``uid``. A deferred response waits there -- an ``await`` on the worker's event loop,
   holding no thread -- until a sibling is correct (a mixed group: it scores 0 unjudged, which is
   what the ``sgpo`` estimator would make of its grade) or all ``rollout.n`` sessions are in and
   wrong (an all-negative group: ``compute_score`` judges it as usual).

A missing sibling never hangs a step: after ``group_wait_s`` seconds (or if the board cannot be
reached) the response is judged as without this manager -- a judge call that may be wasted, never
a wrong reward. The rewards, and so the advantages, are those of ``NaiveRewardManager`` +
``compute_score``. ``scope=all_incorrect`` and other estimators need every wrong response graded:
then nothing waits, nor for a method that asks no judge (``random``, ``grpo``). See docs/scale.md ("What the judge costs") for the costs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

from sgpo.core import METHODS
from sgpo.integrations.verl.estimator import NAME
from sgpo.integrations.verl.reward import DEFER_KEY, DEFERRED, JUDGE_NOW, _count

logger = logging.getLogger("sgpo.verl")

#: ``judge_status`` of a wrong response left unjudged because a sibling was correct.
MIXED = "mixed_group"
BOARD_NAME = "sgpo_group_board"


class GroupBoard:
    """The sessions' outcomes of each prompt, and the wrong responses waiting for their group's kind.

    Used as a Ray actor (async methods run on the actor's event loop); also usable in-process.
    """

    def __init__(self, ttl_s: float = 7200.0):
        self.ttl_s = ttl_s
        self.groups: dict[str, dict[str, Any]] = {}
        self.posts = 0

    async def counts(self) -> dict[str, int]:
        """``posts`` (outcomes received) and ``open`` (groups still missing a session)."""
        return {"posts": self.posts, "open": len(self.groups)}

    async def post(self, uid: str, session: str, correct: bool, n: int, wait_s: float) -> str:
        """Record one session's outcome. With ``wait_s`` > 0 (a wrong response that needs a decision),
        wait until the group is known: ``mixed`` (a session is correct), ``all_negative`` (``n``
        sessions in, all wrong), or ``timeout``. Without waiting: ``posted``."""
        now = time.monotonic()
        for stale in [u for u, g in self.groups.items() if now - g["t"] > self.ttl_s]:
            del self.groups[stale]  # a group that never completed (a failed session)
        group = self.groups.setdefault(uid, {"outcomes": {}, "done": asyncio.Event(), "t": now})
        group["outcomes"][session] = bool(correct)
        self.posts += 1
        if correct or len(group["outcomes"]) >= n:
            group["done"].set()
            if len(group["outcomes"]) >= n:
                self.groups.pop(uid, None)  # complete: waiters keep their reference
        if wait_s <= 0:
            return "posted"
        try:
            await asyncio.wait_for(group["done"].wait(), wait_s)
        except asyncio.TimeoutError:
            return "timeout"
        return "mixed" if any(group["outcomes"].values()) else "all_negative"


_LOCAL_BOARD: GroupBoard | None = None


def group_board():
    """The run's board: a named Ray actor when Ray is up (shared by all reward workers), else this process's."""
    global _LOCAL_BOARD
    import ray

    if ray.is_initialized():
        actor = ray.remote(GroupBoard).options(name=BOARD_NAME, get_if_exists=True, max_concurrency=100_000)
        handle = actor.remote()
        return lambda *args: handle.post.remote(*args)
    if _LOCAL_BOARD is None:
        _LOCAL_BOARD = GroupBoard()
    return _LOCAL_BOARD.post


class SGPORewardManager(NaiveRewardManager):
    """``NaiveRewardManager`` that asks the step judge only about wrong responses of all-negative groups."""

    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score, reward_router_address, reward_model_tokenizer)
        kwargs = config.reward.custom_reward_function.get("reward_kwargs", {}) or {}
        self.wait_s = float(kwargs.get("group_wait_s", 300.0))
        self.group_size = int(config.actor_rollout_ref.rollout.n)
        algorithm = config.algorithm
        section = algorithm.get(NAME, {}) or {}
        scope, method = section.get("scope", "all_negative"), str(section.get("method", "sgpo"))
        # only the default scope drops grades (anything else needs every wrong response graded), and
        # only a judging method has judge calls to save (a drawn grade costs nothing: no waiting)
        judges = method in METHODS and METHODS.get(method).judges
        self.enabled = algorithm.adv_estimator == NAME and scope == "all_negative" and judges and self.wait_s > 0
        self._post, self._warned = None, False

    async def run_single(self, data: DataProto) -> dict:
        data = data[-1:]
        fields = data.non_tensor_batch
        if not self.enabled or "uid" not in fields:
            return await super().run_single(data)
        uid, session = str(fields["uid"][0]), str(fields.get("session_id", np.array([id(data)]))[0])
        extra = dict(fields.get("extra_info", np.array([{}]))[0] or {})
        first = await super().run_single(self._with_extra(data, {**extra, DEFER_KEY: True}))
        info = first["reward_extra_info"]
        deferred = info.get("judge_status") == DEFERRED
        kind = await self._post_outcome(uid, session, info.get("acc", 0.0) >= 1.0, self.wait_s if deferred else 0.0)
        if not deferred:
            return first
        if kind == "mixed":  # a sibling is correct: the estimator would drop this grade
            info["judge_status"] = MIXED
            _count(group_skipped=1)
            return first
        # all-negative, or unknown (timeout, no board): judge, as without this manager
        return await super().run_single(self._with_extra(data, {**extra, DEFER_KEY: JUDGE_NOW}))

    async def _post_outcome(self, uid: str, session: str, correct: bool, wait_s: float) -> str:
        try:
            if self._post is None:
                self._post = group_board()
            return await self._post(uid, session, correct, self.group_size, wait_s)
        except Exception as e:  # noqa: BLE001 - a broken board costs judge calls, never a step
            _count(group_board_failures=1)
            if not self._warned:  # once per worker: the count is in judge_stats()
                self._warned = True
                logger.warning("sgpo group board failed (%s: %s); judging without it", type(e).__name__, e)
            return "error"

    @staticmethod
    def _with_extra(data: DataProto, extra: dict) -> DataProto:
        out = DataProto(batch=data.batch, non_tensor_batch=dict(data.non_tensor_batch), meta_info=data.meta_info)
        cell = np.empty(1, dtype=object)
        cell[0] = extra
        out.non_tensor_batch["extra_info"] = cell
        return out


__all__ = ["BOARD_NAME", "GroupBoard", "MIXED", "SGPORewardManager", "group_board"]

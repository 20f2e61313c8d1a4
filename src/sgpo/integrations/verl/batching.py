"""Gathering the judge requests of concurrent ``compute_score`` calls into batches.

verl calls the reward function once per response, many at a time: a plain function in the reward
worker's thread pool, an ``async def`` one on the worker's event loop. Either way the step judge
should see batches (the HTTP judge sends a batch concurrently, a local model runs it as one
forward), so requests are gathered here and judged one batch at a time -- which also keeps judges
that are not thread-safe (the verdict cache) safe.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable

from sgpo.grading import GradingSettings, judge_requests
from sgpo.judges.base import ERROR, JudgeRequest, Verdict


@dataclass
class Slot:
    """One request and, once its batch has been judged, its verdict, RTS and usability."""

    request: JudgeRequest
    done: bool = False
    verdict: Verdict | None = None
    rts: float = 0.0
    ok: bool = False


class Batcher:
    """Hands the judge the requests of concurrent threads as one batch, one batch at a time.

    A thread that finds the judge idle waits ``wait_s`` for the others' requests, judges everything
    pending in one ``judge_requests`` call and hands each thread its verdict; requests that arrive
    meanwhile go in the next batch. Its capacity is the thread pool's: verl's default pool has
    ``min(32, cpus + 4)`` threads, so no batch is larger (see :class:`AsyncBatcher`).
    """

    def __init__(self, judge, settings: GradingSettings, wait_s: float, log: Callable[[str], None] = print,
                 count: Callable[..., None] | None = None):
        self.judge, self.settings, self.wait_s, self.log, self.count = judge, settings, wait_s, log, count
        self._pending: list[Slot] = []
        self._cv = threading.Condition()
        self._busy = False
        self._judging = threading.Lock()  # one batch at a time, also between the thread and the async paths

    def ask(self, req: JudgeRequest) -> Slot:
        slot = Slot(req)
        with self._cv:
            self._pending.append(slot)
            while self._busy and not slot.done:
                self._cv.wait()
            if slot.done:  # judged in a batch another thread ran
                return slot
            self._busy = True
        try:
            if self.wait_s > 0:
                time.sleep(self.wait_s)
            with self._cv:
                batch, self._pending = self._pending, []
            self.run(batch)
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()
        return slot

    def run(self, batch: list[Slot]) -> None:
        """Judge ``batch`` and fill in its slots; never raises (a failure fills them with ``error`` verdicts)."""
        with self._judging:
            try:
                judged = judge_requests(self.judge, [s.request for s in batch], self.settings, log=self.log)
                results = zip(judged.verdicts, judged.rts.tolist(), judged.ok.tolist())
                if self.count is not None and judged.calls:
                    self.count(judge_batches=1)
            except Exception as e:  # judge_requests does not raise for a judge failure; be safe anyway
                results = ((Verdict.failed(len(s.request.steps), ERROR, raw=repr(e)), 0.0, False) for s in batch)
            for s, (verdict, rts, ok) in zip(batch, results):
                s.verdict, s.rts, s.ok, s.done = verdict, rts, ok, True


class AsyncBatcher:
    """:class:`Batcher` for calls awaiting on one event loop: a waiting call holds no thread, so a
    batch takes every request pending on the loop. The judge itself runs in the loop's thread pool
    (it may block), one batch at a time."""

    _instances: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, AsyncBatcher]]" = weakref.WeakKeyDictionary()

    def __init__(self, batcher: Batcher):
        self.batcher = batcher
        self._pending: list[tuple[Slot, asyncio.Future]] = []
        self._draining = False

    @classmethod
    def of(cls, batcher: Batcher, loop: asyncio.AbstractEventLoop) -> "AsyncBatcher":
        """The one AsyncBatcher of ``batcher`` on ``loop`` (futures belong to one loop)."""
        per_loop = cls._instances.setdefault(loop, {})
        return per_loop.setdefault(id(batcher), cls(batcher))

    async def ask(self, req: JudgeRequest) -> Slot:
        loop = asyncio.get_running_loop()
        slot, done = Slot(req), loop.create_future()
        self._pending.append((slot, done))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        await done
        return slot

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await asyncio.sleep(self.batcher.wait_s)  # let the other calls of this moment join
                batch, self._pending = self._pending, []
                try:
                    await loop.run_in_executor(None, self.batcher.run, [slot for slot, _ in batch])
                finally:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._draining = False


__all__ = ["AsyncBatcher", "Batcher", "Slot"]

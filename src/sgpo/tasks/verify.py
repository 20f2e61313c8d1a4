"""Outcome verification for math: pull the final answer out of a response, compare it with math-verify.

    checker = AnswerChecker(timeout_s=5.0)
    checker.check("\\frac{1}{2}", "... so the answer is \\boxed{0.5}.")   # Check(correct=True, ...)

Extraction tries the configured methods in order (``boxed`` first by default). The comparison is
math-verify's ``verify(gold, answer)``, gold first. math-verify guards itself with
``signal.alarm``, which only works on a process's main thread, and sympy can run for minutes on
an answer like ``9^{9^{9^9}}`` (inside one big-integer power that holds the GIL, so no thread can
be interrupted either). So its own timeouts are switched off and every comparison runs in a
helper process (``python -m sgpo.tasks.verify``, started on first use) that is killed and
replaced when a check overruns ``timeout_s``. This works from any thread and inside worker
processes. A check that times out, cannot be parsed or fails in any way counts as incorrect and
says why in ``Check.status``; it never raises.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from sgpo.tasks.base import Check

#: Extraction methods, in the order users usually want them.
EXTRACTIONS = ("boxed", "answer_line", "last_number")
#: What a check can come to.
STATUSES = ("correct", "wrong", "no_answer", "unparsable", "timeout", "error")

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
# "#### 42", "Answer: 42", "the answer is 42", "**Final answer:** $42$", "answer = 42"
_ANSWER_LINE = re.compile(r"(?:####|answer\s*(?:is\s*[:=]?|[:=]))[\s*]*(?P<rest>[^\n]*)", re.IGNORECASE)
# -12, 1,000, 3.5, 2/3
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")




def _braced(text: str, start: int) -> str | None:
    """The contents of the brace group opening at ``text[start]`` (nested braces kept), or None if unclosed."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def last_boxed(text: str) -> str | None:
    """The contents of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``)."""
    for m in reversed(list(_BOXED.finditer(text))):
        if m.end() < len(text) and text[m.end()] == "{":
            inner = _braced(text, m.end())
        else:  # "\boxed 5": the next token
            inner = (re.match(r"[^\s$.,]+", text[m.end():]) or [None])[0]
        if inner is not None and inner.strip():
            return inner.strip()
    return None


def _strip_answer(text: str) -> str:
    """The answer part of an answer line: markdown bold, a final full stop and outer ``$`` removed."""
    text = text.strip().strip("*").strip()
    text = text.rstrip(".").strip()
    if text.startswith("$") and text.endswith("$") and len(text) > 1:
        text = text.strip("$").strip()
    return text


def extract_answer(response: str, methods=("boxed", "answer_line")) -> tuple[str | None, str | None]:
    """(answer, method): the final answer found by the first of ``methods`` that finds one.

    ``boxed``: the last ``\\boxed{...}``; ``answer_line``: what follows the last "answer is",
    "Answer:", "final answer" or "####"; ``last_number``: the last number in the response.
    """
    for method in methods:
        if method == "boxed":
            found = last_boxed(response)
        elif method == "answer_line":
            hits = [m.group("rest") for m in _ANSWER_LINE.finditer(response)]
            found = next((a for a in map(_strip_answer, reversed(hits)) if a), None)
            found = (last_boxed(found) or found) if found else None
        elif method == "last_number":
            numbers = _NUMBER.findall(response)
            found = numbers[-1] if numbers else None
        else:
            raise ValueError(f"unknown answer extraction {method!r}; choose from: {', '.join(EXTRACTIONS)}")
        if found:
            return found, method
    return None, None


def gold_answer(text: str) -> str:
    """A reference answer as data files give it: GSM8K's ``"reasoning #### 42"`` -> ``"42"``; a
    solution with a ``\\boxed{}`` -> its contents; anything else stripped as is."""
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = last_boxed(text)
    return boxed if boxed is not None else text.strip()


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", text).rstrip(".")


def compare(gold: str, answer: str) -> str:
    """``correct``, ``wrong`` or ``unparsable``: math-verify on the two answers, without its timeouts.

    Runs wherever it is called; :class:`AnswerChecker` calls it in a helper process.
    """
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" on every call
    wrap = lambda s: "$" + s.strip().strip("$") + "$"  # noqa: E731 - latex mode for both sides
    g = parse(wrap(gold), parsing_timeout=None)
    a = parse(wrap(answer), fallback_mode="no_fallback", parsing_timeout=None)
    if not a or not g:
        return "unparsable"
    return "correct" if verify(g, a, timeout_seconds=None) else "wrong"


class AnswerChecker:
    """Thread-safe ``check(gold, response)`` with a per-check timeout; tallies outcomes in ``stats``."""

    def __init__(self, timeout_s: float = 5.0, extraction=("boxed", "answer_line")):
        unknown = [m for m in extraction if m not in EXTRACTIONS]
        if unknown or not extraction:
            raise ValueError(f"answer extraction must be a non-empty list of {', '.join(EXTRACTIONS)}; got {list(extraction)}")
        self.timeout_s, self.extraction = timeout_s, tuple(extraction)
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._helper: _Helper | None = None

    def check(self, gold: str, response: str) -> Check:
        """Extract the response's answer and compare it with ``gold`` (gold first)."""
        answer, method = extract_answer(response, self.extraction)
        if answer is None:
            status = "no_answer"
        elif _normalise(answer) == _normalise(gold):
            status = "correct"  # identical text needs no sympy
        else:
            status = self._compare(gold, answer)
        with self._lock:
            self.stats[status] += 1
        return Check(status == "correct", status, answer, method)

    # -- isolation -------------------------------------------------------------------------------

    def _compare(self, gold: str, answer: str) -> str:
        with self._lock:  # one comparison at a time: a stuck one must not make others time out
            try:
                if self._helper is None or self._helper.poll() is not None:
                    self._helper = _Helper.start()
                return self._helper.ask(gold, answer, self.timeout_s)
            except TimeoutError:
                status = "timeout"  # sympy does not stop when asked (a bigint power holds the GIL): kill it
            except (OSError, ValueError):
                status = "error"  # the helper died; a fresh one starts with the next check
            if self._helper is not None:
                self._helper.kill()
                self._helper = None
            return status

    def close(self) -> None:
        with self._lock:
            if self._helper is not None:
                self._helper.kill()
                self._helper = None

    def __getstate__(self):  # a task travels to worker processes without its helper process
        state = self.__dict__.copy()
        state["_helper"], state["_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __del__(self):
        helper = getattr(self, "_helper", None)
        if helper is not None:
            helper.kill()


class _Helper:
    """A child ``python -m sgpo.tasks.verify`` answering one JSON line per comparison.

    A plain subprocess rather than multiprocessing: it can be started from daemonic worker
    processes (which multiprocessing forbids to have children), it does not re-import the
    caller's ``__main__``, and it can be killed mid-computation.
    """

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.replies = proc, queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def start(cls) -> "_Helper":
        import sgpo

        env = dict(os.environ)
        root = str(Path(sgpo.__file__).resolve().parent.parent)  # sgpo importable even when not installed
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        env.setdefault("OMP_NUM_THREADS", "1")
        proc = subprocess.Popen([sys.executable, "-m", "sgpo.tasks.verify"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env)
        helper = cls(proc)
        try:  # the helper says "ready" once sympy is imported, so check timeouts exclude start-up
            ready = helper.replies.get(timeout=_STARTUP_S)
        except queue.Empty:
            ready = None
        if ready is None:
            helper.kill()
            raise OSError(f"the math-verify helper did not start within {_STARTUP_S:.0f} s")
        return helper

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)  # end of file: the helper exited

    def poll(self):
        return self.proc.poll()

    def ask(self, gold: str, answer: str, timeout_s: float) -> str:
        self.proc.stdin.write(json.dumps([gold, answer]) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.replies.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError from None
        if line is None:
            raise OSError("the math-verify helper exited")
        return json.loads(line)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):  # pragma: no cover - already gone
            pass


#: Seconds the helper may take to start Python and import sympy.
_STARTUP_S = 30.0


def _safe_compare(gold: str, answer: str) -> str:
    try:
        return compare(gold, answer)
    except Exception:
        return "error"


def _serve() -> None:
    """The helper's loop: ``["gold", "answer"]`` lines in, ``"status"`` lines out, until stdin closes."""
    import math_verify  # noqa: F401 - import once, before saying ready

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        gold, answer = json.loads(line)
        sys.stdout.write(json.dumps(_safe_compare(gold, answer)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()

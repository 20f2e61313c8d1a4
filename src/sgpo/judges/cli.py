"""`sgpo judge`: judge a JSONL of responses with a configured step judge.

    sgpo judge responses.jsonl --judge judge.yaml [--out verdicts.jsonl]

Each input row has the problem (``problem``, or ``question`` / ``prompt``), the response as text
(``response`` / ``completion``, split into steps with ``--step-mode``) or already split
(``steps``), and optionally ``reference``, ``answer`` and ``id``. Each output row carries the
row's id, the steps judged and the verdict (``first_error``, ``n_steps``, ``status``, ``raw``).
Judge time, calls, failures and cache hits are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sgpo.cli import positive_int
from sgpo.errors import ConfigError
from sgpo.judges.base import JudgeRequest
from sgpo.errors import DataError
from sgpo.judges.data import _rows, write_jsonl
from sgpo.judges.stats import collect_stats
from sgpo.steps import SPLIT_MODES, split_steps

_PROBLEM = ("problem", "question", "prompt")
_RESPONSE = ("response", "completion")


def _first(row: dict, keys: tuple[str, ...]):
    return next((row[k] for k in keys if k in row), None)


def read_requests(path: str | Path, step_mode: str = "auto", max_steps: int | None = None) -> tuple[list[str], list[JudgeRequest]]:
    """(ids, requests) from a JSONL of responses; a bad row raises DataError with file:line."""
    ids, requests = [], []
    for n, row in _rows(path):
        where = f"{path}:{n}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: a row must be a JSON object")
        problem = _first(row, _PROBLEM)
        if not isinstance(problem, str):
            raise DataError(f"{where}: needs the problem text in one of: {', '.join(_PROBLEM)}")
        if "steps" in row:
            steps = row["steps"]
            if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
                raise DataError(f"{where}: steps must be a list of strings")
            if max_steps is not None:
                from sgpo.steps import merge_steps

                steps = merge_steps(steps, max_steps)
        else:
            response = _first(row, _RESPONSE)
            if not isinstance(response, str):
                raise DataError(f"{where}: needs the response in one of: {', '.join(_RESPONSE)}, or steps")
            steps = split_steps(response, step_mode, max_steps)
        answer = row.get("answer")
        ids.append(str(row.get("id", n)))
        requests.append(JudgeRequest(problem, steps, row.get("reference"), None if answer is None else str(answer)))
    return ids, requests


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSONL of responses (problem, response or steps, reference?, answer?, id?)")
    parser.add_argument("--judge", default="rule",
                        help="judge config file (YAML/JSON), a judge kind with defaults (rule, llm_http, llm_local, prm) "
                             "or a PRM/trained-judge directory (default: rule)")
    parser.add_argument("--out", help="verdicts JSONL (default: stdout)")
    parser.add_argument("--step-mode", choices=SPLIT_MODES, default="auto", help="how responses are split into steps")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="merge each response to at most this many steps")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="requests per judge call (default 64)")


def run(args: argparse.Namespace) -> int:
    from sgpo.judges.judge_eval import resolve_judge
    from sgpo.tasks.arith import ArithTask

    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    ids, requests = read_requests(args.file, args.step_mode, args.max_steps)
    if not requests:
        raise DataError(f"{args.file}: no responses to judge")
    try:
        _, judge = resolve_judge(args.judge, ArithTask(), cache=None)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    out_rows, start = [], time.perf_counter()
    for i in range(0, len(requests), args.batch_size):
        batch = requests[i : i + args.batch_size]
        for rid, req, v in zip(ids[i:], batch, judge.judge(batch)):
            out_rows.append({"id": rid, "steps": req.steps, "first_error": v.first_error, "n_steps": v.n_steps,
                             "status": v.status, "raw": v.raw})
    seconds = time.perf_counter() - start
    if args.out:
        write_jsonl(args.out, out_rows)
    else:
        for row in out_rows:
            print(json.dumps(row))
    stats = {"verdicts": len(out_rows), "seconds": round(seconds, 3),
             "failed": sum(r["status"] != "ok" for r in out_rows), **collect_stats(judge)}
    log("judge stats: " + json.dumps(stats))
    return 0

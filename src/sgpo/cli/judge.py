"""`sgpo judge`: judge a JSONL of responses with a configured step judge.

    sgpo judge responses.jsonl --judge judge.yaml [--out verdicts.jsonl [--overwrite]]

Input rows: see :func:`sgpo.judges.data.read_requests`. Each output row carries the
row's id, the steps judged and the verdict (``first_error``, ``n_steps``, ``status``, ``raw``).
Judge time, calls, failures and cache hits are printed at the end.
"""

from __future__ import annotations

import json
import sys
import time

from sgpo.cli import add_overwrite, positive_int
from sgpo.errors import ConfigError, DataError
from sgpo.files.outputs import check_out
from sgpo.files.rows import write_jsonl
from sgpo.judges.data import read_requests
from sgpo.judges.judge_eval import resolve_judge
from sgpo.judges.stats import collect_stats
from sgpo.tasks.arith import ArithTask
from sgpo.tasks.steps import SPLIT_MODES


def add_arguments(parser) -> None:
    parser.add_argument("file", help="JSONL of responses (problem, response or steps, reference?, answer?, id?)")
    parser.add_argument("--judge", default="rule",
                        help="judge config file (YAML/JSON), a judge kind with defaults (rule, llm_http, llm_local, prm) "
                             "or a PRM/trained-judge directory (default: rule)")
    parser.add_argument("--out", help="verdicts JSONL (default: stdout)")
    add_overwrite(parser)
    parser.add_argument("--step-mode", choices=SPLIT_MODES, default="auto", help="how responses are split into steps")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="merge each response to at most this many steps")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="requests per judge call (default 64)")


def run(args) -> int:
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    if args.out:  # before judging: verdicts that cannot be written are lost work
        check_out(args.out, "file", args.overwrite)
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

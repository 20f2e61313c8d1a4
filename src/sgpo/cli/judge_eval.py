"""`sgpo judge-eval data.jsonl --judge none --judge rule --judge judge.yaml [--out DIR]`.

Prints the metrics table (:mod:`sgpo.judges.judge_eval`) and, with ``--out``, writes
``results.json``, ``results.md`` and each judge's verdicts.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from sgpo.cli import add_overwrite, positive_int
from sgpo.files.outputs import check_out, write_text_atomic
from sgpo.files.rows import write_jsonl
from sgpo.judges.judge_eval import evaluate, markdown_table

#: What --out receives.
OUT_FILES = ("results.json", "results.md", "verdicts")


def add_arguments(parser) -> None:
    parser.add_argument("file", help="ProcessBench-format JSONL (id, problem, steps, label, final_answer_correct, reference?)")
    parser.add_argument("--judge", action="append", required=True, metavar="NAME",
                        help="first | last | none | rule | llm_http | llm_local | prm | judge config file | model dir; "
                             "LABEL=NAME names the column; repeat to compare")
    parser.add_argument("--out", help="write results.json, results.md and verdicts/<judge>.jsonl here")
    add_overwrite(parser)
    parser.add_argument("--batch-size", type=positive_int, default=32, help="requests per judge call (default 32)")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N rows")
    parser.add_argument("--no-reference", action="store_true", help="hide reference solutions from the judges")


def run(args) -> int:
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731 - the table goes to stdout, progress to stderr
    if args.out:  # before any judge runs
        check_out(args.out, "dir", args.overwrite, names=OUT_FILES)
    results, verdicts = evaluate(args.file, args.judge, args.batch_size, not args.no_reference, args.limit, log)
    table = markdown_table(results)
    print(table)
    if args.out:
        out = Path(args.out)
        if (out / "verdicts").is_dir():  # --overwrite: no verdicts of judges this run did not ask
            shutil.rmtree(out / "verdicts")
        write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
        write_text_atomic(out / "results.md", f"Judges on `{args.file}`\n\n{table}\n")
        for name, vs in verdicts.items():
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            write_jsonl(out / "verdicts" / f"{safe}.jsonl",
                        ({"first_error": v.first_error, "n_steps": v.n_steps, "status": v.status, "raw": v.raw} for v in vs))
        log(f"wrote {out}/results.json, results.md and verdicts/")
    return 0

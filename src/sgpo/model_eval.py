"""`sgpo eval`: avg@k and pass@k of a model on benchmark files.

    sgpo eval --model models/smollm2-135m-instruct                      # built-in test split
    sgpo eval --model DIR math500.jsonl gsm8k_test.jsonl --k 8 --out runs/eval/results.jsonl

For each problem, k responses are sampled; each is checked like training checks it (final answer
extracted, compared with math-verify). avg@k is the mean share of correct responses per problem
(an estimate of pass@1), pass@k the share of problems with at least one correct response. Field
names are detected from each file (MATH-500, GSM8K and AIME layouts read as they are) unless
given, and the fields used are printed.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from sgpo.cli import positive_int
from sgpo.tasks.base import Problem
from sgpo.tasks.verify import EXTRACTIONS, STATUSES, AnswerChecker


@dataclass
class FileResult:
    """What one benchmark file came to."""

    name: str
    fields: str
    problems: int = 0
    correct: list[int] = field(default_factory=list)
    """Correct responses per problem."""
    statuses: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0

    def summary(self, k: int) -> dict:
        n = max(1, self.problems)
        return {
            "file": self.name, "fields": self.fields, "problems": self.problems, "k": k,
            f"avg@{k}": sum(self.correct) / (n * k), f"pass@{k}": sum(c > 0 for c in self.correct) / n,
            "statuses": self.statuses, "response_tokens": self.tokens, "seconds": round(self.seconds, 1),
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", help="JSONL/JSON/Parquet benchmark files (default: the built-in word-problem test split)")
    parser.add_argument("--model", required=True, help="local Hugging Face model directory (e.g. from `sgpo models prepare smollm2`)")
    parser.add_argument("--k", type=positive_int, default=4, help="responses sampled per problem (default 4)")
    parser.add_argument("--temperature", type=float, default=0.6, help="sampling temperature; 0 = greedy, one response (default 0.6)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold (default 0.95)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=512, help="longest response in tokens (default 512)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="responses generated at once, k per problem (default 16)")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N problems of each file")
    parser.add_argument("--problem-field", help="field with the problem text (default: detected)")
    parser.add_argument("--answer-field", help="field with the final answer (default: detected; GSM8K '#### 42' answers are understood)")
    parser.add_argument("--id-field", help="field with a problem id (default: detected, else file-row)")
    parser.add_argument("--system-prompt", help="system prompt (chat) or preamble (plain); default: the math task's")
    parser.add_argument("--template", choices=["auto", "chat", "plain"], default="auto",
                        help="chat: the tokenizer's chat template; plain: question then newline (base models); auto: chat if the tokenizer has one")
    parser.add_argument("--extract", nargs="+", choices=EXTRACTIONS, default=["boxed", "answer_line"],
                        help="how the final answer is found, tried in order (default: boxed answer_line)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per math-verify check (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", help="per-problem results JSONL; a summary JSON is written next to it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _benchmarks(args) -> list[tuple[str, list[Problem], str]]:
    """(name, problems, fields used) per file; every file is read and validated before sampling."""
    from sgpo.tasks.math_task import BUILTIN_FIELDS
    from sgpo.tasks.problem_files import read_problems, read_problems_auto
    from sgpo.tasks.wordproblems import builtin_file

    if not args.files:
        path = builtin_file("test")
        return [("built-in test", read_problems(path, BUILTIN_FIELDS)[: args.limit], BUILTIN_FIELDS.describe())]
    out = []
    for f in args.files:
        problems, fields = read_problems_auto(f, args.problem_field, args.answer_field, None, args.id_field)
        out.append((f, problems[: args.limit], f"problem={fields.problem!r} answer={fields.answer!r} id={fields.id!r}"))
    return out


def evaluate_file(model, tokenizer, problems: list[Problem], checker: AnswerChecker, args, name: str, fields: str,
                  write=None, bar=None) -> FileResult:
    """Sample k responses per problem, check them, and tally; ``write(row)`` gets each problem's row."""
    from sgpo.sampling import format_prompt, generate
    from sgpo.tasks.math_task import SYSTEM_PROMPT

    greedy = args.temperature == 0
    k = 1 if greedy else args.k
    system = SYSTEM_PROMPT if args.system_prompt is None else args.system_prompt
    prompts = [format_prompt(p.question, tokenizer, system or None, args.template) for p in problems]
    # Similar lengths together: less left padding per batch.
    order = sorted(range(len(problems)), key=lambda i: len(prompts[i]))
    per_call = max(1, args.batch_size // k)
    result = FileResult(name, fields, statuses=dict.fromkeys(STATUSES, 0))
    rows: dict[int, dict] = {}
    t0 = time.perf_counter()
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]
        rollout = generate(model, tokenizer, [prompts[i] for i in chunk], n=k, temperature=args.temperature or 1.0,
                           top_p=args.top_p, max_new_tokens=args.max_new_tokens, greedy=greedy)
        result.tokens += int(rollout.response_mask.sum())
        for j, i in enumerate(chunk):
            texts = rollout.texts[j * k : (j + 1) * k]
            checks = [checker.check(problems[i].answer, t) for t in texts]
            for c in checks:
                result.statuses[c.status] += 1
            n_ok = sum(c.correct for c in checks)
            rows[i] = {"file": name, "id": problems[i].id, "problem": problems[i].question, "answer": problems[i].answer,
                       "responses": texts, "extracted": [c.answer for c in checks], "status": [c.status for c in checks],
                       "correct": [c.correct for c in checks], "n_correct": n_ok, "avg": n_ok / k, "pass": n_ok > 0}
        if bar is not None:
            bar.update(len(chunk))
            done = [r["avg"] for r in rows.values()]
            bar.set_postfix({"avg": f"{sum(done) / len(done):.3f}"})
    result.seconds = time.perf_counter() - t0
    result.problems = len(problems)
    for i in range(len(problems)):
        result.correct.append(rows[i]["n_correct"])
        if write is not None:
            write(rows[i])
    return result


def print_table(summaries: list[dict]) -> None:
    """The summary as a table (rich)."""
    from rich.console import Console
    from rich.table import Table

    k = summaries[0]["k"]
    table = Table(title="sgpo eval")
    for col in ("file", "problems", f"avg@{k}", f"pass@{k}", "no answer", "unparsable", "timeout", "tokens/s", "seconds"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for s in summaries:
        st, n = s["statuses"], max(1, s["problems"] * k)
        table.add_row(s["file"], str(s["problems"]), f"{s[f'avg@{k}']:.3f}", f"{s[f'pass@{k}']:.3f}",
                      f"{st.get('no_answer', 0) / n:.1%}", str(st.get("unparsable", 0)), str(st.get("timeout", 0)),
                      f"{s['response_tokens'] / max(s['seconds'], 1e-9):.0f}", f"{s['seconds']:.0f}")
    Console(width=140).print(table)


def run(args) -> int:
    import torch

    from sgpo.models import load_policy
    from sgpo.errors import ConfigError

    if args.k < 1 or args.batch_size < 1 or args.max_new_tokens < 1 or not 0 < args.top_p <= 1 or args.temperature < 0:
        raise ConfigError("need --k >= 1, --batch-size >= 1, --max-new-tokens >= 1, 0 < --top-p <= 1, --temperature >= 0")
    benchmarks = _benchmarks(args)
    for name, problems, fields in benchmarks:
        print(f"{name}: {len(problems)} problems; fields {fields}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    model, tokenizer = load_policy(args.model, torch.bfloat16 if device.type == "cuda" else torch.float32)
    model.to(device).eval()
    torch.manual_seed(args.seed)
    checker = AnswerChecker(args.timeout, args.extract)
    k = 1 if args.temperature == 0 else args.k
    out = Path(args.out) if args.out else None
    sink = None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        sink = out.open("w")
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(p) for _, p, _ in benchmarks), desc="eval", dynamic_ncols=True)
    summaries = []
    try:
        for name, problems, fields in benchmarks:
            write = (lambda row: sink.write(json.dumps(row) + "\n")) if sink else None
            result = evaluate_file(model, tokenizer, problems, checker, args, name, fields, write, bar)
            summaries.append(result.summary(k))
    finally:
        checker.close()
        if bar is not None:
            bar.close()
        if sink is not None:
            sink.close()
    print_table(summaries)
    if out is not None:
        meta = {"model": str(args.model), "k": k, "temperature": args.temperature, "top_p": args.top_p,
                "max_new_tokens": args.max_new_tokens, "extract": args.extract, "seed": args.seed}
        summary_path = out.with_name(out.stem + ".summary.json")
        summary_path.write_text(json.dumps({**meta, "files": summaries}, indent=2) + "\n")
        print(f"wrote {out} and {summary_path}")
    return 0

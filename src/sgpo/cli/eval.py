"""`sgpo eval --model DIR [FILES ...]`: avg@k and pass@k of a model on benchmark files.

    sgpo eval --model models/smollm2-135m-instruct                      # built-in test split
    sgpo eval --model DIR math500.jsonl gsm8k_test.jsonl --k 8 --out runs/eval/results.jsonl

What is measured: :mod:`sgpo.evaluation.model_eval`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from sgpo.cli import add_overwrite, float_in, int_in, positive_int, seed_int
from sgpo.files.outputs import atomic_path, check_out, write_text_atomic
from sgpo.models.packaged import check_model_dir
from sgpo.tasks.verify import EXTRACTIONS, AnswerChecker


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="*", help="JSONL/JSON/Parquet benchmark files (default: the built-in word-problem test split)")
    parser.add_argument("--model", required=True, help="local Hugging Face model directory (e.g. from `sgpo models prepare smollm2`)")
    parser.add_argument("--k", type=int_in(1, 1024), default=4, help="responses sampled per problem (default 4)")
    parser.add_argument("--temperature", type=float_in(0.0), default=0.6, help="sampling temperature; 0 = greedy, one response (default 0.6)")
    parser.add_argument("--top-p", type=float_in(0.0, 1.0, low_open=True), default=0.95, help="nucleus sampling threshold (default 0.95)")
    parser.add_argument("--max-new-tokens", type=int_in(1, 1 << 20), default=512, help="longest response in tokens (default 512)")
    parser.add_argument("--batch-size", type=int_in(1, 1 << 20), default=16, help="responses generated at once, k per problem (default 16)")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N problems of each file")
    parser.add_argument("--problem-field", help="field with the problem text (default: detected)")
    parser.add_argument("--answer-field", help="field with the final answer (default: detected; GSM8K '#### 42' answers are understood)")
    parser.add_argument("--id-field", help="field with a problem id (default: detected, else file-row)")
    parser.add_argument("--system-prompt", help="system prompt (chat) or preamble (plain); default: the math task's")
    parser.add_argument("--template", choices=["auto", "chat", "plain"], default="auto",
                        help="chat: the tokenizer's chat template; plain: question then newline (base models); auto: chat if the tokenizer has one")
    parser.add_argument("--extract", nargs="+", choices=EXTRACTIONS, default=["boxed", "answer_line"],
                        help="how the final answer is found, tried in order (default: boxed answer_line)")
    parser.add_argument("--timeout", type=float_in(0.0, 3600.0, low_open=True), default=5.0, help="seconds per math-verify check (default 5)")
    parser.add_argument("--seed", type=seed_int, default=0, help="sampling seed")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", help="per-problem results JSONL; a summary JSON is written next to it")
    add_overwrite(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    # torch and transformers only when the command runs: `sgpo eval --help` stays instant.
    import torch
    from tqdm.auto import tqdm

    from sgpo.evaluation.model_eval import EvalSettings, evaluate_file, print_table, read_benchmarks
    from sgpo.models.policies import load_policy

    out = Path(args.out) if args.out else None
    if out is not None:  # both files, before any model loads
        summary_path = check_out(out.with_name(out.stem + ".summary.json"), "file", args.overwrite)
        check_out(out, "file", args.overwrite)
    if not (Path(args.model) / "adapter_config.json").is_file():  # LoRA adapters name their base model instead
        check_model_dir(args.model, "--model")
    settings = EvalSettings(k=args.k, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                            batch_size=args.batch_size, system_prompt=args.system_prompt, template=args.template)
    benchmarks = read_benchmarks(args.files, args.limit, args.problem_field, args.answer_field, args.id_field)
    for name, problems, fields in benchmarks:
        print(f"{name}: {len(problems)} problems; fields {fields}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    model, tokenizer = load_policy(args.model, torch.bfloat16 if device.type == "cuda" else torch.float32)
    model.to(device).eval()
    torch.manual_seed(args.seed)
    checker = AnswerChecker(args.timeout, args.extract)
    k = settings.responses_per_problem
    summaries = []
    # Rows stream into a temporary file that becomes --out only once every benchmark is done.
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(stack.enter_context(atomic_path(out)).open("w")) if out is not None else None
        bar = None
        if not args.no_progress:
            bar = tqdm(total=sum(len(p) for _, p, _ in benchmarks), desc="eval", dynamic_ncols=True)
        try:
            for name, problems, fields in benchmarks:
                write = (lambda row: sink.write(json.dumps(row) + "\n")) if sink else None
                result = evaluate_file(model, tokenizer, problems, checker, settings, name, fields, write, bar)
                summaries.append(result.summary(k))
        finally:
            checker.close()
            if bar is not None:
                bar.close()
    print_table(summaries)
    if out is not None:
        meta = {"model": str(args.model), "k": k, "temperature": args.temperature, "top_p": args.top_p,
                "max_new_tokens": args.max_new_tokens, "extract": args.extract, "seed": args.seed}
        write_text_atomic(summary_path, json.dumps({**meta, "files": summaries}, indent=2) + "\n")
        print(f"wrote {out} and {summary_path}")
    return 0

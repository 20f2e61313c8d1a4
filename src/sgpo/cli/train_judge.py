"""`sgpo train-judge [--data FILE ...] [--source policy|corrupted|mixed] [--config FILE [--labels rule|rollout]] [--out DIR]`:
train a PRM step judge.

What is trained, on what data, and how it is saved: :mod:`sgpo.judge_training.prm`.
"""

from __future__ import annotations

import json
import sys
import time

from sgpo.cli import add_overwrite, float_in, int_in, positive_float, positive_int, seed_int
from sgpo.errors import ConfigError
from sgpo.files.outputs import atomic_path, check_out
from sgpo.files.rows import write_jsonl
from sgpo.judges.base import JudgeRequest
from sgpo.models.packaged import check_model_dir, resolve_model_dir
from sgpo.train.config import MAX_BATCH, MAX_GROUP, MAX_PROBLEMS, MAX_TINY_LAYERS, MAX_TINY_WIDTH, head_split_problem


def add_arguments(parser) -> None:
    parser.add_argument("--data", action="append", default=[], metavar="FILE",
                        help="step-labelled JSONL (prompt/completions/labels or ProcessBench rows); repeatable. "
                             "Default: generate from the arithmetic task")
    parser.add_argument("--source", choices=("policy", "corrupted", "mixed"), default="policy",
                        help="generated data: warmed-up policy samples, corrupted references, or half each (default policy)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="generate the data from this training config's warmed-up policy and task (e.g. configs/arith.yaml): "
                             "its own samples at its rollout temperature, 1.0 and 0.7; replaces --source")
    parser.add_argument("--labels", choices=("rule", "rollout"), default="rule",
                        help="with --config: label training rows with the rule judge, or with Monte-Carlo estimates from the "
                             "policy (outcome verifier only; no rule judge); test rows keep rule labels (default rule)")
    parser.add_argument("--mc-n", type=int_in(1, MAX_GROUP), default=1, help="--labels rollout: completions per probe (default 1)")
    parser.add_argument("--mc-temperature", type=float_in(0.0, 100.0), default=0.0,
                        help="--labels rollout: completion temperature, 0 greedy (default 0)")
    parser.add_argument("--layout", choices=("plain", "numbered", "aligned"), default="plain",
                        help="the judge's input: plain (problem, reference, steps), numbered ((i) before steps and reference "
                             "lines) or aligned (reference line i beside step i; for step-by-step tasks like arithmetic)")
    parser.add_argument("--n-train", type=int_in(1, MAX_PROBLEMS), default=4000, help="generated training rows (default 4000)")
    parser.add_argument("--samples", type=int_in(1, MAX_GROUP), default=4, help="policy samples per problem (default 4)")
    parser.add_argument("--warmup-steps", type=int_in(0, 10_000_000), default=1000, help="supervised warm-up of the sampling policy (cached)")
    parser.add_argument("--noise-p", type=float_in(0.0, 1.0), default=0.1, help="warm-up noise of the sampling policy (default 0.1)")
    parser.add_argument("--base-model", default="auto",
                        help="the causal LM to start from: a directory, a packaged name (smollm2), `policy` (the warmed-up "
                             "sampling policy), `tiny` (a fresh tiny Llama); auto: policy for generated policy data, else tiny")
    parser.add_argument("--layers", type=int_in(1, MAX_TINY_LAYERS), default=2, help="tiny model layers (default 2)")
    parser.add_argument("--d-model", type=int_in(8, MAX_TINY_WIDTH), default=128, help="tiny model width (default 128)")
    parser.add_argument("--heads", type=int_in(1, MAX_TINY_WIDTH), default=4, help="tiny model attention heads (default 4)")
    parser.add_argument("--steps", type=positive_int, default=800, help="optimizer steps (default 800)")
    parser.add_argument("--batch-size", type=int_in(1, MAX_BATCH), default=32, help="solutions per step (default 32)")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--reference", choices=("auto", "yes", "no"), default="auto",
                        help="show the judge the reference solution (auto: if most training rows have one)")
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--threads", type=int_in(1, 4096), default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default="models/arith-judge", help="output directory (default models/arith-judge)")
    add_overwrite(parser)


def run(args) -> int:

    if args.labels != "rule" and not args.config:
        raise ConfigError("--labels rollout needs --config (the policy whose completions estimate the labels)")
    if args.config and args.data:
        raise ConfigError("give --config (generate data) or --data (read it), not both")
    # torch and transformers only when the command runs: `sgpo train-judge --help` stays instant.
    import torch

    from sgpo.judge_training.arith_data import warmed_policy
    from sgpo.judge_training.prm import SEPARATOR, build_model, file_data, generated_data, train_steps, tune_threshold
    from sgpo.judges.judge_eval import compute_metrics, evaluate, markdown_table
    from sgpo.judges.prm import JUDGE_META, PRMJudge

    base = args.base_model
    if base == "auto":
        base = "policy" if not args.data and not args.config and args.source in ("policy", "mixed") else "tiny"
    if base == "tiny" and (problem := head_split_problem(args.d_model, args.heads)):  # before any data work
        raise ConfigError(f"--heads {args.heads} {problem.replace('d_model=', '--d-model ')}")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    # Before any data is generated or model trained: where the judge goes, and what it starts from.
    out = check_out(args.out, "dir", args.overwrite)
    if args.base_model not in ("auto", "policy", "tiny"):
        check_model_dir(resolve_model_dir(args.base_model), "--base-model")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    label_cost: dict = {}
    if args.data:
        data = file_data(args.data, args.seed, log)
    elif args.config:
        from sgpo.judge_training.mc_labels import config_data

        data, _, label_cost = config_data(args.config, args.n_train, args.seed, args.labels, args.mc_n, args.mc_temperature, log)
    else:
        data = generated_data(args.source, args.n_train, args.seed, args.warmup_steps, args.samples, log, args.noise_p)
    use_reference = {"yes": True, "no": False}.get(args.reference)
    if use_reference is None:
        use_reference = sum(r.reference is not None for r in data["train"]) * 2 > len(data["train"])
    if base == "policy":  # the policy already reads these solutions; its body is a head start
        base = str(warmed_policy(args.warmup_steps, args.noise_p, args.seed, log)[2])
    model, tokenizer = build_model(None if base == "tiny" else base, args.layers, args.d_model, args.heads, args.seed)
    judge = PRMJudge(model, tokenizer, "sgpo", separator=SEPARATOR, use_reference=use_reference, max_length=1024,
                     layout=args.layout)
    log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; reference shown: {use_reference}")
    losses = train_steps(judge, data["train"], args.steps, args.batch_size, args.lr, args.seed, log)
    threshold, val_f1 = tune_threshold(judge, data["validation"])
    log(f"threshold {threshold:.3f} (validation F1 {val_f1:.3f})")

    meta = {"format": "sgpo", "separator": SEPARATOR, "use_reference": use_reference, "threshold": threshold, "base_model": base,
            "layout": args.layout, "labels": args.labels if args.config else "given", "label_cost": label_cost,
            "validation_f1": val_f1, "train_rows": len(data["train"]), "steps": args.steps,
            "final_loss": sum(losses[-20:]) / len(losses[-20:]), "source": args.data or args.config or args.source,
            "seconds": round(time.perf_counter() - start, 1)}
    with atomic_path(out) as tmp:  # the directory appears complete, or the old one stays
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if args.config:  # the rows the judge was trained on, in the step-labelled format `--data` reads back
            write_jsonl(tmp / "labels_train.jsonl", (r.to_processbench() for r in data["train"]))
        (tmp / JUDGE_META).write_text(json.dumps(meta, indent=2) + "\n")  # marks a complete judge directory
    log(f"saved judge to {out} ({meta['seconds']} s)")
    if data["test"]:
        heldout = write_jsonl(out / "heldout.jsonl", (r.to_processbench() for r in data["test"]))
        results, _ = evaluate(heldout, ["first", "last", "none", f"trained={out}"], log=log)
        table = markdown_table(results)
        (out / "heldout.md").write_text(f"Held-out arithmetic solutions ({len(data['test'])} rows)\n\n{table}\n")
        print(table)
        log(f"re-run with: sgpo judge-eval {heldout} --judge first --judge last --judge none --judge {out}")
    else:
        val = compute_metrics(data["validation"], judge.judge([JudgeRequest(r.problem, r.steps, r.reference) for r in data["validation"]]), 0.0)
        print(json.dumps({"validation": {k: val[k] for k in ("f1", "acc_erroneous", "acc_correct")}}))
    return 0

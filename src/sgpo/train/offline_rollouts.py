"""Fixed rollouts for offline training: sample G responses per problem, verify (and optionally judge) them, write a rollouts file.

The policy, prompts and sampling are the trainer's (``task``, ``model``, ``warmup``, ``rollout``
sections; the warm-up cache is reused), so ``sgpo train train.mode=offline data.rollouts=FILE``
with the same config starts from the very policy whose behaviour log-probs the file stores.
When judged, the responses in ``algorithm.scope`` are judged by the ``judge`` section's judge
(``algorithm.scope=all_incorrect`` judges every wrong response, so the file serves both scopes);
failed verdicts are kept, with their status, and counted. The format is in :mod:`sgpo.rollouts.file`.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from sgpo.core import classify_groups
from sgpo.errors import ConfigError
from sgpo.files.outputs import check_out
from sgpo.grading import StepReading, in_scope, judge_rows
from sgpo.judges.config import build_judge
from sgpo.judges.stats import collect_stats
from sgpo.rollouts.file import RolloutRecord, tokenizer_fingerprint
from sgpo.rollouts.writer import RolloutsWriter
from sgpo.sampling.rollout import generate, layout, on_responses, to_device, token_logprobs_chunked, unpack
from sgpo.train.config import Config
from sgpo.train.prefix_sampler import bind_rollout_judge
from sgpo.train.runtime import autocast, bf16_supported, pick_device, prompt_for, task_for
from sgpo.train.sft import initial_policy, warmup_key


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def roll_out(cfg: Config, out: str | Path, split: str = "train", n_problems: int | None = None, with_judge: bool = False,
             batch_prompts: int | None = None, overwrite: bool = False, log=_stderr) -> dict:
    """Sample ``cfg.rollout.group_size`` responses to each of ``n_problems`` problems of ``split``
    (None: ``task.n_train`` for train, ``task.n_eval`` otherwise), verify them (and with
    ``with_judge``, judge those in ``algorithm.scope`` with the ``judge`` section's judge), and write
    them to the rollouts file ``out``, ``batch_prompts`` problems per sampling call (None:
    ``rollout.prompts_per_step``).

    Returns the totals (responses, correct, all_negative, all_positive, judged, failed, tokens,
    seconds) and, when judged, the judge's counters under ``judge_stats``.
    """
    check_out(out, "file", overwrite)  # before the warm-up and sampling
    device = pick_device(cfg)
    task = task_for(cfg)
    n = n_problems if n_problems is not None else (cfg.task.n_train if split == "train" else cfg.task.n_eval)
    try:
        problems = task.problems(split, n)
    except ValueError as e:  # e.g. more problems asked for than the task has: the user's to fix
        raise ConfigError(f"--split {split} --problems {n}: {e}") from None  # named as `sgpo rollout` takes them
    step_judge = build_judge(cfg.judge, task) if with_judge else None  # before the warm-up, so a bad judge fails fast
    G, r = cfg.rollout.group_size, cfg.rollout
    torch.manual_seed(cfg.train.seed)  # as the trainer seeds before building its policy
    policy, tokenizer = initial_policy(cfg, device, log, lora=False)
    policy.eval()
    prompt = prompt_for(cfg, task, tokenizer)
    if step_judge is not None:  # a Monte-Carlo judge samples its completions from this policy
        bind_rollout_judge(step_judge, cfg, policy, tokenizer, prompt, device)
    bf16 = cfg.train.bf16 and bf16_supported(device)
    # Every sequence is laid out as prompt_width + max_new_tokens columns when its log-probs are
    # taken, here and in offline training, so bf16 gives the same numbers in both.
    prompt_width = max(len(ids) for ids in tokenizer([prompt(p.question) for p in problems], add_special_tokens=False)["input_ids"])
    header = {
        "model": cfg.model.path or f"tiny {cfg.model.arch} {cfg.model.n_layers}x{cfg.model.d_model}",
        "warmup": warmup_key(cfg) if cfg.warmup.steps else None,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "task": cfg.task.name, "split": split,
        "group_size": G, "temperature": r.temperature, "top_p": r.top_p, "max_new_tokens": r.max_new_tokens,
        # The trainer's old log-probs are taken under the same autocast; offline ratios start at 1.
        "logprob_precision": "bf16" if bf16 else "float32", "prompt_width": prompt_width,
        "response_width": r.max_new_tokens,
        "judge": cfg.judge.kind if with_judge else None, "judge_scope": cfg.algorithm.scope if with_judge else None,
        "step_mode": task.step_mode, "max_steps": cfg.judge.max_steps,
        "seed": cfg.train.seed, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    per_call = batch_prompts if batch_prompts is not None else r.prompts_per_step
    reading = StepReading(task.step_mode, cfg.judge.max_steps)
    totals = {"responses": 0, "correct": 0.0, "all_negative": 0, "all_positive": 0, "judged": 0, "failed": 0, "tokens": 0}
    bar = None
    if cfg.train.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(problems), desc="rollout", unit="problem", dynamic_ncols=True)
    start = time.perf_counter()
    with RolloutsWriter(out, header, overwrite=overwrite) as writer:
        for first in range(0, len(problems), per_call):
            batch = problems[first : first + per_call]
            rollout = generate(policy, tokenizer, [prompt(p.question) for p in batch], n=G, temperature=r.temperature,
                               top_p=r.top_p, max_new_tokens=r.max_new_tokens)
            ids = unpack(rollout)
            fixed = to_device(layout([p for p, _ in ids], [x for _, x in ids], rollout.texts, tokenizer.pad_token_id,
                                     prompt_width, r.max_new_tokens), rollout.input_ids.device)
            with autocast(device, cfg.train.bf16):
                logp, _ = token_logprobs_chunked(policy, fixed, r.temperature, cfg.optim.mini_batch_size)
            logprobs = on_responses(fixed, logp)
            outcomes = torch.tensor([task.verify(t, batch[i // G]) for i, t in enumerate(rollout.texts)]).view(-1, G)
            verdicts = [None] * len(rollout.texts)
            if step_judge is not None:
                index = in_scope(outcomes, cfg.algorithm.scope)
                judged = judge_rows(batch, rollout.texts, index, G, reading, step_judge, log=log)
                for i, v in zip(index, judged.verdicts):
                    verdicts[i] = v
                totals["judged"] += len(index)
                totals["failed"] += int((~judged.ok).sum())
            for g, p in enumerate(batch):
                records = []
                for j in range(G):
                    i = g * G + j
                    prompt_ids, response_ids = ids[i]
                    records.append(RolloutRecord(
                        group=first + g, sample=j, problem_id=p.id, problem=p.question, reference=p.reference or None,
                        answer=p.answer or None, prompt=prompt(p.question), response=rollout.texts[i],
                        prompt_ids=prompt_ids, response_ids=response_ids, logprobs=logprobs[i],
                        outcome=float(outcomes.view(-1)[i]), verdict=verdicts[i],
                    ))
                writer.write_group(records)
            kinds = classify_groups(outcomes)
            totals["responses"] += len(rollout.texts)
            totals["correct"] += float(outcomes.sum())
            totals["all_negative"] += int(kinds.all_negative.sum())
            totals["all_positive"] += int(kinds.all_positive.sum())
            totals["tokens"] += int(rollout.response_mask.sum())
            if bar is not None:
                bar.update(len(batch))
                bar.set_postfix(acc=f"{totals['correct'] / totals['responses']:.2f}",
                                all_neg=f"{totals['all_negative'] / (totals['responses'] // G):.2f}")
    if bar is not None:
        bar.close()
    task.close()  # e.g. the math verifier's helper process
    totals["seconds"] = time.perf_counter() - start
    if step_judge is not None:
        totals["judge_stats"] = collect_stats(step_judge)
    return totals

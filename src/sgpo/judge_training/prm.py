"""Training a step judge directly from step-labelled data (``sgpo train-judge``).

The judge is a small causal LM with a per-step correctness head (a token-classification head read
at the ``<step>`` token that closes each step): P(the solution is still right after step i).
It is saved as a Hugging Face directory plus ``sgpo_judge.json`` and loads with ``PRMJudge``
(``judge.kind=prm``, ``judge.prm.model=DIR``).

Data: ``--data FILE`` (stepwise rows ``prompt, completions, labels`` or ProcessBench rows), or by
default the arithmetic task: samples of a warmed-up tiny policy (``--source policy``), corrupted
reference solutions (``--source corrupted``) or both (``mixed``), labelled by the rule judge.
With policy samples the judge starts from that policy's body (it already reads these solutions);
otherwise from a fresh tiny Llama, or from ``--base-model`` (a directory, or ``smollm2``).
The decision threshold is tuned for F1 on a validation split; with generated data a held-out
test set is written to ``DIR/heldout.jsonl`` and the judge is compared with the trivial
baselines on it.
"""

from __future__ import annotations

import random

from sgpo.judges.base import JudgeRequest
from sgpo.judges.data import LabelledSolution, read_labelled
from sgpo.train.guard import UpdateGuard
from sgpo.train.runtime import optimizer_step

SEPARATOR = "<step>"


# --- data ---------------------------------------------------------------------------------------


def generated_data(source: str, n: int, seed: int, warmup_steps: int, samples: int, log,
                   noise_p: float = 0.1) -> dict[str, list[LabelledSolution]]:
    """Train / validation / test rows from the arithmetic task (``n`` training rows)."""
    from sgpo.judge_training.arith_data import corrupted_rows, policy_rows

    sizes = {"train": n, "validation": max(50, n // 8), "test": max(100, n // 4)}
    out = {}
    for split, size in sizes.items():
        rows: list[LabelledSolution] = []
        if source in ("policy", "mixed"):
            k = size if source == "policy" else size // 2
            rows += policy_rows(-(-k // samples), samples, split, seed, warmup_steps, noise_p, log=log)[:k]
        if source in ("corrupted", "mixed"):
            rows += corrupted_rows(size - len(rows), split, seed)
        out[split] = rows
        log(f"data: {len(rows)} {split} rows from {source}")
    return out


def file_data(paths: list[str], seed: int, log) -> dict[str, list[LabelledSolution]]:
    """Rows from files, 10% held back for threshold tuning (no test split: evaluate with judge-eval)."""
    rows = [r for p in paths for r in read_labelled(p)]
    random.Random(seed).shuffle(rows)
    n_val = max(1, len(rows) // 10)
    log(f"data: {len(rows) - n_val} training and {n_val} validation rows from {len(paths)} file(s)")
    return {"train": rows[n_val:], "validation": rows[:n_val], "test": []}


# --- model --------------------------------------------------------------------------------------


def build_model(base: str | None, layers: int, d_model: int, heads: int, seed: int):
    """(token-classification model with 2 labels, tokenizer with the step separator).

    ``base`` None builds a fresh tiny Llama with the arithmetic tokenizer (``layers``, ``d_model``,
    ``heads``); otherwise the body of that causal LM is kept under a fresh 2-class head.
    """
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, LlamaConfig, LlamaForTokenClassification

    if base is None:
        from sgpo.models.policies import arith_tokenizer

        tokenizer = arith_tokenizer()
        tokenizer.add_special_tokens({"additional_special_tokens": [SEPARATOR]})
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=d_model, intermediate_size=4 * d_model,
                             num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                             max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id, num_labels=2)
        torch.manual_seed(seed)
        return LlamaForTokenClassification(config), tokenizer
    from sgpo.models.packaged import resolve_model_dir

    path = resolve_model_dir(base)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.add_special_tokens({"additional_special_tokens": [SEPARATOR]})
    torch.manual_seed(seed)
    # The causal LM's body is kept; its LM head is dropped and a fresh 2-class head added.
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=2)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer


# --- training -----------------------------------------------------------------------------------


def step_targets(row: LabelledSolution) -> list[int]:
    """Training targets at each step boundary: 1 for the steps before the first error, 0 at the
    first error, and -100 (ignored) after it.

    The judge reports the first step it scores low, so it only has to tell whether a step is right
    *given a right prefix*; whether steps after an error are "right" is ill-defined, and learning
    "everything after an error is wrong" would ask a small model to carry an error forward.
    """
    k = len(row.steps) if row.label < 0 else row.label
    return [1 if i < k else 0 if i == k else -100 for i in range(len(row.steps))]


def _encode_all(judge, rows: list[LabelledSolution]):
    """(encoded, per-step targets) for every row the judge can lay out."""
    out = []
    for r in rows:
        enc = judge.encode(JudgeRequest(r.problem, r.steps, r.reference))
        if not isinstance(enc, str) and len(enc.positions) == len(r.steps):
            out.append((enc, step_targets(r)))
    return out


def train_steps(judge, rows: list[LabelledSolution], steps: int, batch_size: int, lr: float, seed: int, log,
                max_skipped_steps: int = 3) -> list[float]:
    """Cross-entropy on the step-boundary positions (see :func:`step_targets`). A step with a
    non-finite loss or gradient is skipped; ``max_skipped_steps`` in a row stop training
    (:class:`~sgpo.errors.TrainingDiverged`)."""
    import torch

    model, data = judge.model, _encode_all(judge, rows)
    if not data:
        raise ValueError("no training row fits the judge's input layout")
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.05, 1 - s / steps))
    pad = judge.tokenizer.pad_token_id or 0
    model.train()
    losses = []
    guard = UpdateGuard(max_skipped_steps, "judge training")
    for step in range(steps):
        batch = [data[rng.randrange(len(data))] for _ in range(batch_size)]
        width = max(len(e.ids) for e, _ in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for row, (e, lab) in enumerate(batch):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
            labels[row, e.positions] = torch.tensor(lab, dtype=torch.long)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, 2), labels.view(-1), ignore_index=-100)
        losses.append(optimizer_step(model, opt, sched, loss, guard=guard, step=step + 1))
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"step {step + 1}/{steps}: loss {sum(losses[-20:]) / len(losses[-20:]):.4f}")
    model.eval()
    return losses


def tune_threshold(judge, rows: list[LabelledSolution]) -> tuple[float, float]:
    """The threshold with the best ProcessBench F1 on ``rows``, and that F1 (0.5 if no rows)."""
    from sgpo.judges.judge_eval import compute_metrics

    if not rows:
        return 0.5, float("nan")
    scores = judge.step_scores([JudgeRequest(r.problem, r.steps, r.reference) for r in rows])
    best = (0.5, -1.0)
    for t in [i / 40 for i in range(1, 40)]:
        judge.threshold = t
        f1 = compute_metrics(rows, [judge.verdict(s, len(r.steps)) for s, r in zip(scores, rows)], 0.0)["f1"]
        if f1 > best[1] + 1e-9:
            best = (t, f1)
    judge.threshold = best[0]
    return best

"""Step-labelled solutions of the arithmetic task, labelled by its exact rule judge.

Two sources:

- ``corrupted``: reference solutions with one perturbation (an arithmetic slip, a wrong operand or
  operation, a skipped operation, a wrong final answer) or none; cheap and varied.
- ``policy``: what a tiny policy writes after a noisy supervised warm-up (the trainer's own
  warm-up, cached), sampled at temperature 1: the kind of responses a judge sees in training.

Either way the label is the rule judge's first-error index, so it is exact.
"""

from __future__ import annotations

import random
from pathlib import Path

from sgpo.errors import ConfigError
from sgpo.judges.base import JudgeRequest
from sgpo.judges.data import LabelledSolution
from sgpo.tasks.arith import ArithRuleJudge, ArithSpec, ArithTask, Chain, apply
from sgpo.tasks.base import Problem

CORRUPTIONS = ("slip", "slip_local", "operand", "operator", "skip", "answer")


def _line(a: int, op: str, b: int, c: int) -> str:
    return f"{a} {op} {b} = {c}"


def corrupt(problem: Problem, kind: str, rng: random.Random) -> list[str]:
    """The reference solution's steps with one ``kind`` of mistake at a random step."""
    chain = Chain.parse(problem.question)
    ops, values = list(chain.ops), chain.values()
    j = rng.randrange(len(ops))
    delta = rng.choice([-1, 1]) * rng.randint(1, 9)
    if kind == "answer":
        return [_line(values[i], *ops[i], values[i + 1]) for i in range(len(ops))] + [f"Answer: {values[-1] + delta}"]
    if kind == "skip" and len(ops) > 1:
        ops.pop(j)  # the chain goes on without operation j
    elif kind in ("slip", "slip_local"):
        pass
    elif kind == "operand":
        op, b = ops[j]
        ops[j] = (op, max(1, b + delta) if max(1, b + delta) != b else b + 1)
    elif kind == "operator":
        op, b = ops[j]
        ops[j] = (rng.choice([o for o in "+-*" if o != op]), b)
    lines, value = [], chain.start
    for i, (op, b) in enumerate(ops):
        result = apply(value, op, b)
        if result is None:  # an inexact division after a change: write the floor, also wrong
            result = value // b
        if i == j and kind in ("slip", "slip_local"):
            result += delta
        lines.append(_line(value, op, b, result))
        # "slip" carries the wrong value on; "slip_local" goes back to the right one.
        value = apply(value, op, b) if (i == j and kind == "slip_local") else result
    return lines + [f"Answer: {value}"]


def label(problem: Problem, steps: list[str], task: ArithTask, judge: ArithRuleJudge, uid: str) -> LabelledSolution | None:
    """The rule judge's verdict as a labelled solution (None if the judge cannot read the problem)."""
    verdict = judge.judge([JudgeRequest(problem.question, steps)])[0]
    if not verdict.ok:
        return None
    correct = task.verify("\n".join(steps), problem) == 1.0
    return LabelledSolution(uid, problem.question, steps, verdict.first_error, correct, problem.reference)


def corrupted_rows(n: int, split: str = "train", seed: int = 0, p_correct: float = 0.3,
                   spec: ArithSpec = ArithSpec()) -> list[LabelledSolution]:
    """``n`` labelled solutions: references, a share ``p_correct`` of them left intact."""
    task, judge, rng = ArithTask(spec, seed=seed), ArithRuleJudge(), random.Random(f"corrupt-{seed}-{split}")
    rows = []
    for i, problem in enumerate(task.problems(split, n)):
        if rng.random() < p_correct:
            steps = problem.reference.split("\n")
        else:
            steps = corrupt(problem, rng.choice(CORRUPTIONS), rng)
        row = label(problem, steps, task, judge, f"arith-{split}-{i}")
        if row is not None:
            rows.append(row)
    return rows


def _policy_config(warmup_steps: int, noise_p: float, seed: int):
    from sgpo.train.config import load_config

    return load_config(None, [f"warmup.steps={warmup_steps}", f"warmup.noise_p={noise_p}", f"warmup.seed={seed}",
                              "train.device=cpu", "train.bf16=false"])


def warmed_policy(warmup_steps: int = 1000, noise_p: float = 0.1, seed: int = 0, log=print):
    """(model, tokenizer, directory) of the tiny policy after the trainer's noisy supervised
    warm-up, trained once and cached (the same cache ``sgpo train`` uses)."""
    from sgpo.train.runtime import pick_device
    from sgpo.train.sft import initial_policy, warmup_key

    cfg = _policy_config(warmup_steps, noise_p, seed)
    model, tokenizer = initial_policy(cfg, pick_device(cfg), log)
    return model, tokenizer, Path(cfg.warmup.cache_dir).expanduser() / warmup_key(cfg)


def policy_rows(n_problems: int, samples: int = 4, split: str = "train", seed: int = 0, warmup_steps: int = 1000,
                noise_p: float = 0.1, max_new_tokens: int = 64, log=print) -> list[LabelledSolution]:
    """Samples of the warmed-up tiny policy (``samples`` per problem), labelled by the rule judge.

    Responses without steps are dropped; duplicates are kept, as the trainer would see them.
    """
    import torch

    from sgpo.sampling.rollout import format_prompt, generate
    from sgpo.tasks.steps import split_steps

    model, tokenizer, _ = warmed_policy(warmup_steps, noise_p, seed, log)
    task, judge = ArithTask(seed=seed), ArithRuleJudge()
    problems = task.problems(split, n_problems)
    torch.manual_seed(seed)
    rows = []
    for start in range(0, len(problems), 32):
        chunk = problems[start : start + 32]
        rollout = generate(model, tokenizer, [format_prompt(p.question, tokenizer) for p in chunk], n=samples,
                           temperature=1.0, max_new_tokens=max_new_tokens)
        for i, text in enumerate(rollout.texts):
            problem = chunk[i // samples]
            steps = split_steps(text, task.step_mode)
            if steps:
                row = label(problem, steps, task, judge, f"policy-{split}-{start * samples + i}")
                if row is not None:
                    rows.append(row)
    return rows


def config_policy(config_path: str | None = None, log=print):
    """(config, model, tokenizer, prompt) of the warmed-up policy a training config starts RL from
    (``configs/arith.yaml`` by default), from the warm-up cache (trained once if missing)."""
    from sgpo.train.compare import default_config_path
    from sgpo.train.config import load_config
    from sgpo.train.runtime import pick_device, prompt_for, task_for
    from sgpo.train.sft import initial_policy

    cfg = load_config(config_path or default_config_path())  # as trained: the warm-up cache key includes bf16
    model, tokenizer = initial_policy(cfg, pick_device(cfg), log, lora=False)
    return cfg, model.eval(), tokenizer, prompt_for(cfg, task_for(cfg), tokenizer)


def sampled_rows(cfg, model, tokenizer, prompt, n_problems: int, samples: int, split: str, temperatures: tuple[float, ...],
                 seed: int = 0, uid: str = "policy") -> list[LabelledSolution]:
    """The policy's own solutions to ``n_problems`` problems of ``cfg``'s task (``samples`` each, the
    problems' chunks cycling through ``temperatures``), labelled by the rule judge.

    Responses without steps are dropped; duplicates are kept, as a judge in training sees them.
    """
    import torch

    from sgpo.sampling.rollout import generate
    from sgpo.tasks.steps import split_steps
    from sgpo.train.runtime import sampling_precision, task_for

    task, judge = task_for(cfg), ArithRuleJudge()
    problems = task.problems(split, n_problems)
    rows = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for c, start in enumerate(range(0, len(problems), 64)):
            chunk = problems[start : start + 64]
            with sampling_precision(cfg, model, next(model.parameters()).device):  # as the trainer samples
                out = generate(model, tokenizer, [prompt(p.question) for p in chunk], n=samples,
                               temperature=temperatures[c % len(temperatures)], max_new_tokens=cfg.rollout.max_new_tokens,
                               sampler=cfg.rollout.sampler)
            for i, text in enumerate(out.texts):
                steps = split_steps(text, task.step_mode)
                if steps:
                    row = label(chunk[i // samples], steps, task, judge, f"{uid}-{split}-{start * samples + i}")
                    if row is not None:
                        rows.append(row)
    return rows


def corrupted_rows_for(cfg, n: int, split: str, seed: int = 0, p_correct: float = 0.3) -> list[LabelledSolution]:
    """:func:`corrupted_rows` on the problems of ``cfg``'s arithmetic task (its spec, not the default one)."""
    from sgpo.train.runtime import task_for

    if cfg.task.name != "arith":
        raise ConfigError(f"corrupted solutions are made from arithmetic problems; the config has task.name={cfg.task.name}")
    return corrupted_rows(n, split, seed, p_correct, task_for(cfg).spec)

"""The native trainer: batch -> verify/judge -> rewards -> advantages -> PPO epochs.

One RL step (``Trainer.step``):
  1. get N groups of G responses in a seeded order: sampled from the policy and verified
     (``train.mode=online``), or loaded with their outcomes from a rollouts file (``offline``);
  2. classify the groups;
  3. if the method needs it, find where each response in scope first goes wrong: a stored
     verdict, else the step judge;
  4. rewards and advantages from ``sgpo.core.METHODS[method]``;
  5. the update (``sgpo.train.update``): mu epochs of clipped policy-gradient steps over
     mini-batches; the old log-probs in the importance ratio are the stored behaviour log-probs
     (offline) or the policy's own, taken before the first update (online; with one epoch of one
     mini-batch, the update's own forward, detached). A sampler that reports its log-probs gets the
     truncated importance-sampling correction of ``rollout.is_cap``. A non-finite loss or gradient
     skips the step (``sgpo.train.guard``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from sgpo.core import judge_mask, needs_judge
from sgpo.evaluation.report import write_run_report
from sgpo.grading import Graded, GradingSettings, grade, grading_stats, step_generator, token_counter
from sgpo.judges.config import build_judge
from sgpo.judges.state import judge_state, load_judge_state
from sgpo.judges.stats import collect_stats
from sgpo.judges.watch import JudgeWatch
from sgpo.sampling.kv_cache import inner_model
from sgpo.sampling.rollout import stop_ids, truncated_rows
from sgpo.train.batches import Batch, BatchSource, PromptStream, SampledBatches, StoredBatches
from sgpo.train.checkpoint import load_policy_weights, restore_rng, save_checkpoint
from sgpo.train.config import Config
from sgpo.train.evaluation import evaluate
from sgpo.train.guard import UpdateGuard, interrupted
from sgpo.train.metrics import MetricsWriter, read_jsonl, sample_records
from sgpo.train.prefix_sampler import bind_rollout_judge
from sgpo.train.run_dir import RunDir
from sgpo.train.runtime import pick_device, prompt_for, seed_everything, task_for
from sgpo.train.sft import initial_policy
from sgpo.train.update import no_update, update_policy


class Trainer:
    def __init__(self, cfg: Config, run_dir: str | Path | None = None, resume: bool = False, log=print, judge=None,
                 overwrite: bool = False):
        """``judge``: any ``StepJudge`` object to use instead of the one ``cfg.judge`` describes.
        ``overwrite``: a fresh run may replace a run already in ``run_dir`` (else that is an error).
        ``run_dir`` stays locked until ``train()`` ends (or ``self.run.close()``)."""
        self.cfg, self.log = cfg, log
        # Before any work: one run per directory, and a fresh run never mixes with an old one.
        self.run = RunDir(run_dir or cfg.train.out_dir, resume=resume, overwrite=overwrite).open()
        self.run_dir = self.run.path
        with self.run.released_on_error():
            self._init(cfg, resume, log, judge)

    def _init(self, cfg: Config, resume: bool, log, judge) -> None:
        self.device = pick_device(cfg)
        self.task = task_for(cfg)
        # Offline: read and check the rollouts file first, so a bad one fails before any warm-up.
        self.offline = StoredBatches(cfg, log) if cfg.train.mode == "offline" else None
        self.train_problems = [] if self.offline else self.task.problems("train", cfg.task.n_train)
        self.eval_problems = self.task.problems("validation", cfg.task.n_eval)
        self.method = cfg.algorithm.method
        self.judge = (judge or build_judge(cfg.judge, self.task)) if self._needs_judge() else None
        self.params = cfg.algorithm.shaping_params()
        self.grading = GradingSettings(self.method, self.params, self.task.step_mode, cfg.judge.max_steps, cfg.algorithm.rts_unit)
        seed_everything(cfg.train.seed)
        self.policy, self.tokenizer = initial_policy(cfg, self.device, log)
        if self.offline:
            self.offline.attach(self.tokenizer, self.task.step_mode, self.device, log)
        self.prompt = prompt_for(cfg, self.task, self.tokenizer)
        self.batches: BatchSource = self.offline or SampledBatches(
            self.train_problems, self.policy, self.tokenizer, self.task, self.prompt, cfg, self.device)
        bind_rollout_judge(self.judge, cfg, self.policy, self.tokenizer, self.prompt, self.device)  # MC judge samples with it
        self.ref = None
        if cfg.algorithm.beta_kl > 0:
            self.ref, _ = initial_policy(cfg, self.device, log, lora=False)  # with LoRA: the base alone
            self.ref.eval().requires_grad_(False)
        cpu_online = self.device.type == "cpu" and not self.offline  # offline: the kernel the file's log-probs came from
        attn = {"auto": "eager" if cpu_online else None}.get(cfg.train.attention, cfg.train.attention)
        for model in [self.policy, self.ref] if attn else []:
            if model is not None and hasattr(inner_model(model), "set_attn_implementation"):
                inner_model(model).set_attn_implementation(attn)
        # Only trainable parameters: with LoRA the frozen base gets no optimizer state (nor weight decay).
        self.trainable = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        warm = cfg.optim.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / (warm + 1)))
        self.stream = PromptStream(len(self.batches), cfg.train.seed)
        self.step_idx = 0
        self.judge_calls = 0
        self.guard = UpdateGuard(cfg.train.max_skipped_steps, "RL")
        self.watch = JudgeWatch(cfg.judge.warn_failure_frac, cfg.judge.max_failure_frac, f"`sgpo train --resume {self.run_dir}`", log)
        if resume:
            self._resume()
        else:
            self.run.start(cfg)
        self.writer = MetricsWriter(self.run_dir, cfg.train.tensorboard)

    @classmethod
    def resume_from(cls, run_dir: str | Path, log=print) -> "Trainer":
        with RunDir(run_dir, resume=True).open() as run:  # checked (and locked) before its config is read
            cfg = run.read_config()
        return cls(cfg, run.path, resume=True, log=log)

    # -- set-up ----------------------------------------------------------------------------------

    def _needs_judge(self) -> bool:
        """Online: whenever the method uses verdicts. Offline: only if some response in the judging
        scope has no stored verdict (so a fully judged file needs no judge at all)."""
        if not needs_judge(self.method):
            return False
        if self.offline is None:
            return True
        missing = self.offline.missing_verdicts(lambda o: judge_mask(o, self.cfg.algorithm.scope))
        if missing:
            self.log(f"offline: {missing} responses in scope {self.cfg.algorithm.scope} have no stored verdict; "
                     f"judging them with judge.kind={self.cfg.judge.kind}")
        return missing > 0

    def _resume(self) -> None:
        rollouts = (self.offline.fingerprint, self.offline.file.path) if self.offline else (None, None)
        ckpt, state = self.run.checkpoint_to_resume(self.cfg, *rollouts)  # checked against this run's config and file
        load_policy_weights(self.policy, ckpt)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state)
        self.step_idx = state["step"]
        self.stream.position = state["data_position"]
        self.judge_calls = state["judge_calls"]
        self.guard.load_state_dict(state.get("guard", {"skipped_total": 0, "in_row": 0}))  # older runs: none skipped
        if "judge" in state:  # the noise RNG and verdict cache, so the verdicts go on as without the stop
            load_judge_state(self.judge, state["judge"])
        self.run.rewind(self.step_idx)
        self.log(f"resumed from {ckpt} at step {self.step_idx}")

    def save(self) -> Path:
        extra = {"data_position": self.stream.position, "judge_calls": self.judge_calls,
                 "config": self.cfg.model_dump(mode="json"), "guard": self.guard.state_dict(),
                 "judge": judge_state(self.judge)}
        if self.offline:
            extra["rollouts_sha256"] = self.offline.fingerprint
        return save_checkpoint(self.run_dir, self.step_idx, self.policy, self.tokenizer, self.optimizer, self.scheduler, extra)

    # -- the loop --------------------------------------------------------------------------------

    def train(self) -> list[dict]:
        """Run the remaining steps; evaluate and checkpoint on schedule. Returns this call's metrics."""
        cfg = self.cfg.train
        history, bar = [], None
        if cfg.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.steps, initial=self.step_idx, desc=self.method, dynamic_ncols=True)
        try:
            if self.step_idx == 0:
                # A fresh run's curve starts before the first update, so gains are measured from
                # where RL began (a resumed run has this row already). evaluate() forks the RNG,
                # so training is the same with or without it.
                start = {"step": 0, **self.evaluate()}
                self.writer.log(start)
                history.append(start)
            while self.step_idx < cfg.steps:
                metrics = self.step()
                last = self.step_idx == cfg.steps
                if last or (cfg.eval_every and self.step_idx % cfg.eval_every == 0):
                    metrics.update(self.evaluate())
                self.writer.log(metrics)
                history.append(metrics)
                self.guard.check(self.step_idx)  # before any checkpoint: the last good one stays the last
                if last or (cfg.save_every and self.step_idx % cfg.save_every == 0):
                    self.save()
                if bar is not None:
                    bar.update(1)
                    post = {"acc": f"{metrics['accuracy/train']:.2f}", "all_neg": f"{metrics['groups/all_negative_frac']:.2f}"}
                    if "eval/accuracy" in metrics:
                        post["eval"] = f"{metrics['eval/accuracy']:.2f}"
                    bar.set_postfix(post)
        except KeyboardInterrupt:  # checkpoints are written atomically: the last complete one is intact
            raise interrupted(self.run_dir, self.step_idx) from None
        finally:
            if bar is not None:
                bar.close()
            self.writer.close()
            metrics_file = self.run_dir / "metrics.jsonl"  # absent when nothing ran (train.steps=0)
            write_run_report(self.run_dir, read_jsonl(metrics_file) if metrics_file.exists() else [], self.cfg.judge.warn_failure_frac)
            self.run.close()
        return history

    def step(self) -> dict:
        cfg, G = self.cfg, self.cfg.rollout.group_size
        t_start = time.perf_counter()
        n_prompts = cfg.rollout.prompts_per_step * (1 + (cfg.algorithm.dapo_resample_rounds if self.grading.spec.oversamples else 0))
        t0 = time.perf_counter()
        checks_before = self._verify_counts()
        batch = self._next_batch(n_prompts)
        t_generate = time.perf_counter() - t0
        checks = {f"verify/{k}": v - checks_before.get(k, 0) for k, v in self._verify_counts().items()}
        problems, rollout, outcomes = batch.problems, batch.rollout, batch.outcomes

        t0 = time.perf_counter()
        step_gen = step_generator(cfg.train.seed, self.step_idx)
        shaped = self._grade(batch, step_gen)
        failed = shaped.judged & ~shaped.verdict_ok
        self.watch.check(self.step_idx + 1, int(shaped.judged.sum()), int(failed.sum()))  # a failing judge said out loud; may stop the run
        t_judge = time.perf_counter() - t0
        keep = shaped.keep
        if self.grading.spec.oversamples:
            # Keep the first prompts_per_step groups with signal; the over-sampled rest refill the batch.
            keep = keep & (keep.cumsum(0) <= cfg.rollout.prompts_per_step)
        rows = keep.repeat_interleave(G).nonzero().squeeze(1)

        t0 = time.perf_counter()
        advantages = shaped.advantages.reshape(-1)
        truncated = truncated_rows(rollout, stop_ids(self.policy, self.tokenizer))
        trained = rollout
        if cfg.rollout.mask_truncated_completions and truncated.any():
            advantages = advantages.masked_fill(truncated.to(advantages.device), 0.0)
            trained = dataclasses.replace(rollout, response_mask=rollout.response_mask.masked_fill(truncated[:, None], 0))
        behaviour = batch.behaviour_logp[rows] if batch.behaviour_logp is not None else None
        update = (update_policy(self.policy, self.optimizer, self.scheduler, trained.select(rows), advantages[rows], cfg,
                                step=self.step_idx, device=self.device, ref=self.ref, behaviour_logp=behaviour) if len(rows)
                  else no_update(self.policy, rollout, cfg, self.device))
        self.guard.record(update.pop("skipped", False))
        t_train = time.perf_counter() - t0

        self.step_idx += 1
        t_step = time.perf_counter() - t_start
        n_tokens = int(rollout.response_mask.sum())
        metrics = {
            "step": self.step_idx, **grading_stats(outcomes, shaped), "groups/kept_frac": keep.float().mean().item(),
            "sgpo/judge_calls_total": self.judge_calls, **update, "train/skipped_steps": self.guard.skipped_total,
            "lr": self.scheduler.get_last_lr()[0],
            "time/generate": t_generate, "time/sample": self.batches.sample_seconds, "time/judge": t_judge, "time/train": t_train, "time/step": t_step,
            "tokens_per_s": n_tokens / t_step, "response/truncated_frac": truncated.float().mean().item(),
            "response_tokens/mean": n_tokens / len(rollout.texts),
        }
        metrics.update(checks)  # this step's answer checks by status (tasks that count them: math)
        if self.judge is not None:
            # Calls, retries, failures by status, cache hits: counted since this process built the judge.
            metrics.update(collect_stats(self.judge))
        if cfg.train.log_samples:
            self.writer.samples(sample_records(self.step_idx, problems, rollout.texts, outcomes, shaped, cfg.train.log_samples))
        return metrics

    def _verify_counts(self) -> dict[str, int]:
        """The task's running tally of answer checks by status (correct, no_answer, timeout, ...), if it keeps one."""
        return self.task.verify_stats()

    def _next_batch(self, n_prompts: int) -> Batch:
        """N groups of G responses, the next ``n_prompts`` of the seeded stream: loaded from the
        rollouts file (offline), or sampled and verified."""
        return self.batches.take(self.stream.take(n_prompts))

    def _grade(self, batch: Batch, generator: torch.Generator) -> Graded:
        """Verdicts (stored, else asked of the judge), rewards and advantages for the batch."""
        graded = grade(batch.problems, batch.rollout.texts, batch.outcomes, self.grading, self.judge, batch.verdicts,
                       token_counter(self.tokenizer), generator, self.log)
        self.judge_calls += graded.calls
        return graded

    def evaluate(self) -> dict:
        """Greedy accuracy and avg@k / pass@k on the held-out split, without touching the training RNG."""
        return evaluate(self.policy, self.tokenizer, self.prompt, self.task, self.eval_problems, self.cfg, self.step_idx,
                        self.device)


def train(cfg: Config, run_dir: str | Path | None = None, log=print, overwrite: bool = False) -> list[dict]:
    """Train from scratch into ``run_dir`` (default ``cfg.train.out_dir``); ``overwrite`` replaces a run there."""
    return Trainer(cfg, run_dir, log=log, overwrite=overwrite).train()


def resume(run_dir: str | Path, log=print) -> list[dict]:
    """Continue the run in ``run_dir`` from its latest checkpoint, exactly."""
    return Trainer.resume_from(run_dir, log=log).train()


__all__ = ["Trainer", "train", "resume"]

"""SGPO inside TRL: ``SGPOTrainer(GRPOTrainer)`` and ``SGPOConfig(GRPOConfig)``.

    from sgpo.integrations.trl import SGPOConfig, SGPOTrainer

    args = SGPOConfig(output_dir="out", num_generations=8, sgpo_judge="judge.yaml")
    trainer = SGPOTrainer(model, reward_funcs=[correct, well_formatted], args=args, train_dataset=ds)
    trainer.train()

How SGPO enters TRL: ``GRPOTrainer._calculate_rewards`` returns the rewards of every
reward function, gathered over processes, shaped [global batch, reward functions]; a group is G
consecutive rows and may be split over processes. The override reads the outcome column, finds
the all-negative groups on the gathered tensor, judges only this process's rows of them through
``sgpo.grading.grade``, gathers the RTS and verdict flags, computes the method's rewards with
``sgpo.core`` and writes them back into the outcome column. TRL's advantage, loss and logging
code runs unchanged on them, and the other reward functions (format, length) keep their columns.
Any method of ``sgpo.core.METHODS`` works, its registration says how: a method with
``own_advantages`` (``ngrpo``: a virtual reward-1 sample) changes the advantage formula itself, so
for it the advantages TRL computed from the same rewards are replaced by the method's; a method
that ``oversamples`` (``dapo``) needs a sampler TRL does not have and is refused.

A response in scope whose verdict failed (timeout, error, unparsable or out-of-range answer) has an
unknown reward: its row becomes NaN in every column, which TRL treats as an unscorable row (left
out of its group's mean and std, advantage 0), the failure rule of docs/metrics.md and of the native trainer.

The raw outcome accuracy and the ``sgpo/*`` statistics are logged beside TRL's metrics: TRL's own
``rewards/<outcome function>/mean`` is computed from the graded column.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import trl
from accelerate.utils import gather
from packaging.version import Version
from trl import GRPOConfig, GRPOTrainer

from sgpo.core import METHODS, ShapingParams
from sgpo.grading import (
    RTS_UNITS,
    Graded,
    GradingSettings,
    grade,
    grading_stats,
    judged_mask,
    shape,
    step_generator,
    token_counter,
)
from sgpo.judges.config import JudgeConfig, build_judge, load_judge_config
from sgpo.judges.watch import JudgeWatch
from sgpo.tasks.base import Problem

logger = logging.getLogger("sgpo.trl")

#: TRL's std epsilon in its advantage formula; the grading step uses it too, so ngrpo's
#: replacement advantages and TRL's own agree with the native trainer run with ``eps=1e-4``.
TRL_EPS = 1e-4
#: The first TRL that leaves an all-NaN reward row (a failed verdict) out of its group's mean and std
#: (huggingface/trl#5902). Older TRL turns that row into reward 0 inside the group statistics: a judge
#: failure would silently count as a wrong answer's reward.
MIN_TRL = "1.6.0"


def method_choices() -> list[str]:
    """The methods ``sgpo_method`` takes: every registered one but those that over-sample prompts."""
    return [name for name in METHODS.names() if not METHODS.get(name).oversamples]


def check_trl_version(version: str) -> None:
    """Refuse a TRL older than ``MIN_TRL`` with a one-line reason."""
    if Version(version) < Version(MIN_TRL):
        raise RuntimeError(f"SGPOTrainer needs trl>={MIN_TRL} (found {version}): older TRL counts a failed "
                           "verdict's unknown reward as 0 in its group's statistics; pip install -U 'sgpo[trl]'")


@dataclass
class SGPOConfig(GRPOConfig):
    """``GRPOConfig`` plus the settings of SGPO's grading step (all prefixed ``sgpo_``)."""

    sgpo_method: str = field(
        default="sgpo",
        metadata={"help": "What all-negative groups learn: `grpo` nothing, `sgpo` judge-graded rewards, `random` random "
                          "RTS (judge-free control), `ngrpo` a virtual reward-1 sample in each group's statistics; or any "
                          "other method registered in `sgpo.core.METHODS` that does not over-sample prompts."},
    )
    sgpo_scope: str = field(
        default="all_negative",
        metadata={"help": "Which wrong responses are graded: `all_negative` (only in all-negative groups) or "
                          "`all_incorrect` (every wrong response)."},
    )
    sgpo_mapping: str = field(
        default="logistic", metadata={"help": "RTS -> reward mapping: `logistic`, `linear`, `raw` (`sgpo.core.REWARD_MAPPINGS`)."}
    )
    sgpo_beta: float = field(default=5.0, metadata={"help": "Slope of the logistic mapping sigmoid(beta * (RTS - gamma))."})
    sgpo_gamma: float = field(default=0.5, metadata={"help": "Centre of the logistic mapping."})
    sgpo_linear_scale: float = field(default=0.5, metadata={"help": "Slope of the linear mapping scale * RTS."})
    sgpo_rts_unit: str = field(
        default="steps", metadata={"help": "RTS as the share of `steps` or of `tokens` before the first error."}
    )
    sgpo_step_mode: str = field(
        default="auto", metadata={"help": "How a completion is split into steps: `auto`, `paragraph`, `line` or `marker`."}
    )
    sgpo_max_steps: int | None = field(
        default=None, metadata={"help": "Merge a completion's steps down to at most this many before judging."}
    )
    sgpo_outcome_reward: str | None = field(
        default=None,
        metadata={"help": "Name of the reward function whose value is the outcome (1 correct, else wrong); its column "
                          "receives the graded rewards. Default: the first reward function."},
    )
    sgpo_judge: str | None = field(
        default=None,
        metadata={"help": "YAML file with the step judge's settings (`sgpo.judges.config.JudgeConfig`, e.g. `kind: "
                          "llm_http` and its server). Not needed when a judge object is passed to SGPOTrainer."},
    )
    sgpo_problem_column: str = field(
        default="problem", metadata={"help": "Dataset column with the problem text the judge sees (default: the prompt)."}
    )
    sgpo_reference_column: str = field(
        default="reference", metadata={"help": "Dataset column with a reference solution the judge may use (optional)."}
    )
    sgpo_answer_column: str = field(
        default="answer", metadata={"help": "Dataset column with the reference final answer (optional)."}
    )
    sgpo_judge_log: str | None = field(
        default=None,
        metadata={"help": "Directory where each process appends, per step, the rows it judged and the rewards it "
                          "returned (`judged_rank<r>.jsonl`); for debugging and for the multi-process test."},
    )

    def __post_init__(self):
        super().__post_init__()
        choices = method_choices()
        if self.sgpo_method not in choices:
            raise ValueError(f"sgpo_method={self.sgpo_method!r}; choose one of: {', '.join(choices)}"
                             + (" (it over-samples prompts to refill the batch; TRL has no such sampler)"
                                if self.sgpo_method in METHODS else ""))
        own = METHODS.get(self.sgpo_method).own_advantages
        if own and getattr(self, "multi_objective_aggregation", "sum_then_normalize") != "sum_then_normalize":
            raise ValueError(f"sgpo_method={self.sgpo_method!r} needs multi_objective_aggregation='sum_then_normalize'")
        self.sgpo_settings()  # bad scope, mapping or unit fail here, not at the first step

    def sgpo_settings(self) -> GradingSettings:
        """The grading step's settings; advantages scaled as TRL scales them."""
        if self.sgpo_rts_unit not in RTS_UNITS:
            raise ValueError(f"sgpo_rts_unit={self.sgpo_rts_unit!r}; choose one of: {', '.join(RTS_UNITS)}")
        options = {k[len("sgpo_"):]: v for k, v in vars(self).items() if k.startswith("sgpo_")}
        options["scale"] = {True: "group", False: "none"}.get(self.scale_rewards, self.scale_rewards)
        params = ShapingParams.from_options(options, eps=TRL_EPS, prefix="sgpo_")
        return GradingSettings(self.sgpo_method, params, self.sgpo_step_mode, self.sgpo_max_steps, self.sgpo_rts_unit)


def _text(x) -> str:
    """A prompt or completion as plain text: a string, or the contents of chat messages."""
    if isinstance(x, str):
        return x
    return "\n".join(m["content"] if isinstance(m.get("content"), str) else str(m.get("content")) for m in x)


class SGPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose outcome rewards are graded by a step judge in all-negative groups.

    Args:
        judge: a ``StepJudge`` (anything with ``judge(requests) -> verdicts``); default: built from
            ``args.sgpo_judge``. Needed only for a method that judges (``sgpo``: ``Method.judges``).
        Everything else as ``GRPOTrainer``; ``args`` must be an :class:`SGPOConfig`.
    """

    def __init__(self, *args, judge=None, **kwargs):
        check_trl_version(trl.__version__)
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, SGPOConfig):
            raise TypeError(f"SGPOTrainer needs args=SGPOConfig(...), got {type(self.args).__name__}")
        a = self.args
        self.sgpo = a.sgpo_settings()
        names = list(self.reward_func_names)
        if a.sgpo_outcome_reward is not None and a.sgpo_outcome_reward not in names:
            raise ValueError(f"sgpo_outcome_reward={a.sgpo_outcome_reward!r} is not a reward function; "
                             f"the reward functions are: {', '.join(names)}")
        self.outcome_col = names.index(a.sgpo_outcome_reward) if a.sgpo_outcome_reward else 0
        if judge is None and self.sgpo.spec.judges and a.sgpo_judge is None:
            raise ValueError(f"sgpo_method={a.sgpo_method!r} needs a step judge: SGPOTrainer(judge=...) or "
                             "SGPOConfig(sgpo_judge=FILE)")
        judge_cfg = load_judge_config(a.sgpo_judge) if a.sgpo_judge is not None else JudgeConfig()
        if judge is None and self.sgpo.spec.judges:
            judge = build_judge(judge_cfg)
        self.judge = judge
        # The judge YAML's warn_failure_frac / max_failure_frac (defaults for a judge passed in), checked on the
        # counts gathered over processes: every process stops at the same step, none is left waiting.
        self.judge_watch = JudgeWatch(judge_cfg.warn_failure_frac, judge_cfg.max_failure_frac,
                                      "resume from the last checkpoint (trainer.train(resume_from_checkpoint=True))",
                                      log=logger.warning if self.accelerator.is_main_process else lambda _: None)
        self.sgpo_judge_calls = 0
        self._gathered_rewards: torch.Tensor | None = None
        self._gathered_grades: tuple[torch.Tensor, torch.Tensor] | None = None  # [N, G] RTS and verdict flags

    # -- the override --------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # gathered [B, F]
        mode = "train" if self.model.training else "eval"
        outcomes = torch.nan_to_num(rewards[:, self.outcome_col].float(), nan=0.0).cpu()
        self._metrics[mode]["sgpo/outcome_accuracy"].append(outcomes.mean().item())
        if mode == "eval":  # evaluation only logs; judging its groups would cost calls that teach nothing
            return rewards
        G = self.num_generations
        grouped = outcomes.view(-1, G)
        local, lo = len(prompts), self.accelerator.process_index * len(prompts)
        mine = self._grade_local_rows(inputs, prompts, completions, grouped, lo, local)
        # Every process contributes its own rows, in process order: the gathered rows are the global batch.
        rts = gather(mine.rts.view(-1)[lo : lo + local].to(rewards.device)).cpu().view(-1, G)
        ok = gather(mine.verdict_ok.view(-1)[lo : lo + local].float().to(rewards.device)).cpu().view(-1, G) > 0.5  # gloo: no bool
        shaped = shape(grouped, rts, ok, self.sgpo, step_generator(self.args.seed, self.state.global_step))
        column = rewards[:, self.outcome_col]
        graded = shaped.rewards.reshape(-1).to(rewards.device, rewards.dtype)
        rewards[:, self.outcome_col] = torch.where(torch.isnan(column), column, graded)  # an unscorable row stays so
        if shaped.known is not None:
            # A response in scope whose verdict failed has an unknown reward (the failure rule): a row of NaN is
            # TRL's own "unscorable" row, which leaves its group's mean and std and gets advantage 0.
            rewards[~shaped.known.reshape(-1).to(rewards.device)] = torch.nan
        self._gathered_rewards, self._gathered_grades = rewards, (rts, ok)
        stats = grading_stats(grouped, shaped, judged_mask(grouped, self.sgpo), ok, rts)
        stats["sgpo/judge_calls_total"] = self._all_processes_sum(self.sgpo_judge_calls)
        self.judge_watch.check(self.state.global_step + 1, int(stats["sgpo/judged_responses"]), int(stats["sgpo/judge_failures"]))
        for k, v in stats.items():
            self._metrics[mode][k].append(float(v))
        self._log_judged(mine.rows, lo, completions, outcomes, rewards[:, self.outcome_col])
        return rewards

    def _grade_local_rows(self, inputs, prompts, completions, grouped, lo: int, local: int) -> Graded:
        """``sgpo.grading.grade`` on this process's rows ``lo .. lo + local`` of the global batch ``grouped`` [N, G]."""
        a, G = self.args, self.num_generations
        texts = {lo + j: _text(c) for j, c in enumerate(completions)}
        problems = {}
        for j in reversed(range(local)):  # a group's rows share their prompt; any of this process's rows of it will do
            x = inputs[j]
            problems[(lo + j) // G] = Problem(str(lo + j), _text(x.get(a.sgpo_problem_column) or prompts[j]),
                                              x.get(a.sgpo_reference_column), x.get(a.sgpo_answer_column))
        mine = grade(problems, texts, grouped, self.sgpo, self.judge, count_tokens=token_counter(self.processing_class),
                     log=print, rows=range(lo, lo + local))
        self.sgpo_judge_calls += mine.calls
        return mine

    def _all_processes_sum(self, value: int) -> int:
        return int(gather(torch.tensor([value], device=self.accelerator.device)).sum())

    def _log_judged(self, rows: list[int], lo: int, completions, outcomes: torch.Tensor, rewards: torch.Tensor) -> None:
        if not self.args.sgpo_judge_log:
            return
        out = Path(self.args.sgpo_judge_log)
        out.mkdir(parents=True, exist_ok=True)
        record = {"step": self.state.global_step, "rank": self.accelerator.process_index, "world": self.accelerator.num_processes,
                  "group_size": self.num_generations, "judged_rows": rows, "first_row": lo,
                  "completions": [_text(c) for c in completions], "outcomes": outcomes.tolist(),
                  "rewards": rewards.float().cpu().tolist()}
        with open(out / f"judged_rank{self.accelerator.process_index}.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.sgpo.spec.own_advantages and self.model.training and self._gathered_rewards is not None:
            r = self._gathered_rewards
            total = (r * self.reward_weights.to(r.device).unsqueeze(0)).nansum(dim=1).float().cpu()
            adv = shape(total.view(-1, self.num_generations), *self._gathered_grades, self.sgpo).advantages
            n = len(output["advantages"])
            lo = self.accelerator.process_index * n
            output["advantages"] = adv.reshape(-1)[lo : lo + n].to(output["advantages"].device, output["advantages"].dtype)
            self._logs["advantages"].clear()  # the completions table shows the advantages trained on
            self._logs["advantages"].extend(adv.reshape(-1).tolist())
        return output


__all__ = ["SGPOConfig", "SGPOTrainer", "TRL_EPS", "method_choices"]

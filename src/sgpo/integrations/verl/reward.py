"""``compute_score`` for verl's ``reward.custom_reward_function``: outcome + step-judge grade of one response.

    reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward
    reward.custom_reward_function.name=compute_score_async
    +reward.custom_reward_function.reward_kwargs.judge_config=/abs/path/judge.yaml

verl calls the reward function ``(data_source, solution_str, ground_truth, extra_info)`` once per
response, merged with ``reward_kwargs``, in its reward-loop workers: ``compute_score_async`` is
awaited on the worker's event loop, ``compute_score`` (same fields) runs in its thread pool, which
caps how many wrong responses share a judge batch (see :mod:`sgpo.integrations.verl.batching`). The
response is verified with the task's own verifier (the arithmetic task's, or the math task's
``\\boxed{}`` + math-verify check); a correct one scores 1. verl shows the reward function no
group, so a wrong one is always graded as the method (``method``, default ``sgpo``) grades it: for
``sgpo`` it is sent to the step judge and scores f(RTS) < 1 (``sgpo.core.graded_reward``) when the
verdict is usable; without one (a failed verdict, or a response without steps, which is not sent)
it scores ``UNKNOWN_SCORE`` (-0.001), which the estimator reads as an unknown reward. A judge
failure never raises; it is counted. The ``random`` control draws its RTS instead (no judge, for
exactly the responses a judge could grade: those with steps); ``grpo`` grades nothing (a wrong
response scores 0). The ``sgpo`` advantage estimator then keeps the grades only in the method's
scope (all-negative groups by default), which gives the native trainer's rewards; the grades of
wrong responses in mixed groups are the extra judge calls this costs.

Data: ``extra_info["question"]`` (or ``"problem"``) is the problem text the judge sees,
``extra_info["reference"]`` (or ``"solution"``) an optional reference solution, and
``ground_truth`` the final answer (for math, a GSM8K ``"... #### 42"`` or ``\\boxed{}`` solution
works too). :mod:`sgpo.integrations.verl.data` writes sgpo tasks in that layout.

``reward_kwargs`` (all optional):

* ``task``: ``arith``, ``math`` or ``auto`` (default: ``arith`` if ``data_source`` contains
  "arith", else ``math``);
* ``method`` (``sgpo``): the registered method to grade for, the estimator's
  ``algorithm.sgpo.method``; one that only changes rewards (``sgpo.core.Method.reward_only``):
  a wrong response scores the method's reward for it alone. ``seed`` (0) seeds a judge-free
  method's draws, together with the problem and the response text;
* ``judge_config``: an sgpo judge YAML/JSON file (a ``judge:`` section or a training config);
  ``judge``: JudgeConfig fields as a mapping (e.g. ``judge.kind=llm_http``,
  ``judge.http.base_url=...``), applied over the file. Default: ``kind: rule`` (arithmetic only);
* ``mapping`` (``logistic``/``linear``/``raw``) and ``mapping_params`` (e.g. ``{beta: 5, gamma: 0.5}``);
* ``step_mode`` (default: the task's, ``line``), ``max_steps`` (default: the judge config's);
* ``math_timeout_s`` (5), ``batch_wait_s`` (0.02: how long a judge call waits to gather the
  wrong responses other threads of the process are scoring, so they go to the judge as one batch);
* ``unjudged_splits`` (default ``[val, validation, test]``): rows whose ``extra_info["split"]`` is
  one of these are verl's validation data and are only verified, never judged (verl tells a reward
  function nothing else about validation); ``[]`` judges every row.
* ``group_wait_s`` (300): read by :mod:`sgpo.integrations.verl.manager` only (how long a wrong
  response waits for its group's outcomes before it is judged anyway).

**A judge model hosted by verl** (``reward.reward_model.enable=True``, ``reward.reward_model.model_path``):
verl serves it (vLLM/SGLang) behind a router and passes ``reward_router_address`` (``host:port``)
and ``reward_model_tokenizer`` to this function. The step judge is then ``llm_http`` at
``http://{reward_router_address}/v1``: sgpo's prompt, parsing, voting and failure rules, with the
``llm`` and ``http`` settings (timeouts, retries, concurrency, ``model``) of ``judge_config`` /
``judge``; the router address replaces ``http.base_url``, and without ``http.model`` the model is
the one the router lists. A ``judge.kind`` other than ``llm_http`` next to a hosted judge is an
error (the hosted model would sit unused). The tokenizer is not needed: the server applies the
judge model's chat template.

The judge is built once per process and settings (and only for a method that asks one). Each call
returns ``score`` (1, the method's graded reward, 0 for a wrong validation row or an ungraded
response, or ``UNKNOWN_SCORE``), ``acc`` (the outcome), ``first_error`` (-1: none found or not
judged), ``n_steps``, ``rts`` (the judged RTS; 0 if not judged), ``judge_status``
(``skipped`` for a correct or ungraded response, ``no_steps``, ``drawn`` for a judge-free method's
grade, ``mixed_group`` from sgpo's reward manager, or the verdict's ``ok``/``invalid``/``error``/``timeout``), ``judged`` (1 if the response was sent to the judge) and ``verify_status``.
:func:`judge_stats` has this process's counts.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from sgpo.core import ShapingParams, graded_reward
from sgpo.errors import ConfigError
from sgpo.files.config import validate
from sgpo.grading import GradingSettings, request
from sgpo.integrations.verl.batching import AsyncBatcher, Batcher, Slot
from sgpo.integrations.verl.estimator import UNKNOWN_SCORE, verl_method
from sgpo.judges.base import INVALID, JudgeRequest
from sgpo.tasks import TASKS as KNOWN_TASKS
from sgpo.tasks import Problem, make_task

logger = logging.getLogger("sgpo.verl")

TASKS = ("auto", *KNOWN_TASKS)
_OPTIONS = frozenset({"task", "method", "seed", "judge_config", "judge", "mapping", "mapping_params", "step_mode",
                      "max_steps", "math_timeout_s", "batch_wait_s", "unjudged_splits", "group_wait_s"})
#: ``judge_status`` of a wrong response a judge-free method (the ``random`` control) graded with a drawn RTS.
DRAWN = "drawn"
#: ``extra_info`` key set by :mod:`sgpo.integrations.verl.manager`: ``True``, verify only (a response that
#: would be judged comes back with ``judge_status`` :data:`DEFERRED`, score 0); :data:`JUDGE_NOW`, the
#: second pass of a deferred response (judged; not counted again in :data:`STATS`).
DEFER_KEY = "sgpo_defer_judge"
DEFERRED = "deferred"
JUDGE_NOW = "judge"
#: Rows whose ``extra_info["split"]`` is one of these are held-out data (verl's validation): only
#: their outcome matters (verl's ``val-core`` metrics read ``acc``), so they are not judged.
UNJUDGED_SPLITS = ("val", "validation", "test")

#: This process's counts over all calls: ``responses``, ``correct``, ``judged`` (sent to the judge),
#: ``judge_failures`` (sent, no usable verdict), ``no_steps``, ``judge_batches`` (judge calls),
#: ``group_skipped`` (wrong responses sgpo's reward manager left unjudged: a sibling was correct),
#: ``group_board_failures`` (its board could not be reached: judged without it).
STATS: Counter[str] = Counter()
_STATS_LOCK = threading.Lock()


def judge_stats() -> dict[str, int]:
    """A copy of this process's counts (see :data:`STATS`)."""
    with _STATS_LOCK:
        return dict(STATS)


def _count(**deltas: int) -> None:
    with _STATS_LOCK:
        STATS.update(deltas)


@dataclass
class _Grader:
    task: Any
    task_name: str
    settings: GradingSettings
    batcher: Batcher | None
    """None for a method that asks no judge."""
    seed: int = 0

    def reward(self, rts: float = 0.0, generator: torch.Generator | None = None) -> float:
        """The method's reward for one graded wrong response on its own: its reward in a group of one
        under scope ``all_incorrect`` (``settings.params``), so graded whatever its group turns out to
        be; the estimator applies the method's real scope. A reward-only method grades response by
        response (``sgpo.core.Method.reward_only``), so this is its reward in any group."""
        out = self.settings.spec(torch.zeros(1, 1), rts=torch.tensor([[rts]], dtype=torch.float32),
                                 verdict_ok=torch.ones(1, 1, dtype=torch.bool), params=self.settings.params,
                                 generator=generator)
        reward = float(out.rewards[0, 0])
        if not 0 <= reward < 1:  # 1 reads as correct, a negative score as unknown
            raise ValueError(f"method {self.settings.method!r} gave a wrong response the reward {reward:.4g}; "
                             "verl's path needs graded rewards in [0, 1)")
        return reward

    def generator(self, problem: Problem, text: str) -> torch.Generator:
        """A judge-free method's random draws for one response: seeded by ``seed``, the problem and the
        text, so a rerun draws the same, and equal responses to one problem get equal grades, as a
        judge would give them (verl says nothing else stable about a response: no step, no position)."""
        key = json.dumps([self.seed, problem.id, problem.question, text]).encode()
        return torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1)


_GRADERS: dict[str, _Grader] = {}
_GRADERS_LOCK = threading.Lock()


def _task_name(option: str, data_source: str) -> str:
    if option not in TASKS:
        raise ValueError(f"unknown task {option!r} in reward_kwargs; choose one of: {', '.join(TASKS)}")
    if option != "auto":
        return option
    return "arith" if "arith" in str(data_source).lower() else "math"


def _judge_config(options: dict[str, Any], router: str | None = None):
    """The judge config of ``reward_kwargs``; pointed at verl's reward-model router when there is one."""
    from sgpo.judges.config import JudgeConfig, load_judge_config

    base = load_judge_config(options["judge_config"]).model_dump(exclude_unset=True) if options.get("judge_config") else {}
    over = _plain(options.get("judge") or {})

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    raw = merge(base, over)
    if router:
        kind = raw.get("kind", "llm_http")
        if kind != "llm_http":
            raise ConfigError(f"verl hosts a judge model (reward_router_address={router}) but sgpo's judge.kind={kind}; "
                              "set judge.kind=llm_http (or leave it unset) to judge with it, or disable "
                              "reward.reward_model.enable")
        raw = merge(raw, {"kind": "llm_http", "http": {"base_url": f"http://{router}/v1"}})
    if raw.get("kind") == "rollout":  # it samples from the policy being trained, which verl's reward workers do not hold
        raise ConfigError("judge.kind=rollout needs the trained policy, which verl's reward function does not have; "
                          "use it with `sgpo train`, or train a judge on its labels (`sgpo train-judge --labels rollout`)")
    return validate(JudgeConfig, raw, "verl reward_kwargs (judge_config / judge)", "judge.")


def _plain(value: Any) -> Any:
    """OmegaConf containers (Hydra passes ``reward_kwargs`` as a DictConfig) -> plain dicts and lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is an sgpo dependency
        pass
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _grader(task_name: str, options: dict[str, Any], router: str | None = None) -> _Grader:
    key = json.dumps([task_name, options, router], sort_keys=True, default=str)
    with _GRADERS_LOCK:
        grader = _GRADERS.get(key)
        if grader is not None:
            return grader
        task = make_task(task_name, verify_timeout_s=float(options.get("math_timeout_s", 5.0)))
        method = verl_method(str(options.get("method", "sgpo")), "reward_kwargs.method")
        judge_cfg = _judge_config(options, router) if method.judges else None
        max_steps = options.get("max_steps", judge_cfg.max_steps if judge_cfg is not None else None)
        # every wrong response is graded here: the groups are not known yet (the estimator applies the scope)
        params = ShapingParams(scope="all_incorrect", mapping=options.get("mapping", "logistic"),
                               mapping_params=dict(options.get("mapping_params") or {}))
        lowest = graded_reward(torch.tensor([0.0, 0.5, 1.0]), params.mapping, **params.mapping_params).min()  # a bad mapping fails now
        if lowest < 0:
            raise ValueError(f"the verl path needs graded rewards >= 0 (a negative score marks a failed verdict); "
                             f"mapping {params.mapping} {params.mapping_params} gives {float(lowest):.3g}")
        settings = GradingSettings(method.name, params, options.get("step_mode", task.step_mode),
                                   int(max_steps) if max_steps is not None else None)
        grader = _Grader(task, task_name, settings, None, int(options.get("seed", 0)))
        for rts in (0.0, 0.5, 0.999):  # a method whose rewards leave [0, 1) fails here, on the first call, not mid-run
            grader.reward(rts, torch.Generator().manual_seed(0))
        if method.judges:
            from sgpo.judges.config import build_judge

            try:
                judge = build_judge(judge_cfg, task)  # configuration errors raise here, on the first call
            except Exception as e:
                raise ValueError(f"sgpo's reward function cannot build its step judge for task {task_name!r} from "
                                 f"reward_kwargs judge_config / judge: {e}") from e
            grader.batcher = Batcher(judge, settings, float(options.get("batch_wait_s", 0.02)), log=logger.warning,
                                     count=_count)
        _GRADERS[key] = grader
        return grader


def _field(extra_info: dict, *names: str) -> str | None:
    for name in names:
        value = extra_info.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _prepare(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None,
             router: str | None, kwargs: dict) -> tuple[dict[str, Any], JudgeRequest | None, _Grader]:
    """Verify one response and build its judge request: (fields, request or None if no judge is needed, grader)."""
    options = {k: _plain(v) for k, v in kwargs.items()}
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"unknown sgpo reward_kwargs {sorted(unknown)}; valid: {', '.join(sorted(_OPTIONS))}")
    extra_info = dict(extra_info or {})
    task_name = _task_name(options.get("task", "auto"), data_source)
    grader = _grader(task_name, options, router)

    question = _field(extra_info, "question", "problem")
    reference = _field(extra_info, "reference", "solution")
    answer = grader.task.gold_answer(str(ground_truth))
    problem = Problem(str(extra_info.get("index", "")), question or "", reference, answer)  # type: ignore[arg-type]
    check = grader.task.check(solution_str, problem)
    correct, verify_status = check.correct, check.status
    req = request(problem, solution_str, grader.settings)
    out = {"score": 1.0, "acc": 1.0, "first_error": -1, "n_steps": len(req.steps), "rts": 0.0,
           "judge_status": "skipped", "judged": 0, "verify_status": verify_status}
    defer = extra_info.get(DEFER_KEY)
    if defer != JUDGE_NOW:
        _count(responses=1, correct=int(correct))
    if correct:
        return out, None, grader
    out.update(score=0.0, acc=0.0)
    if str(extra_info.get("split", "")).lower() in [str(x).lower() for x in options.get("unjudged_splits", UNJUDGED_SPLITS)]:
        return out, None, grader  # held-out data: the outcome is all that is measured
    spec = grader.settings.spec
    if not spec.grades:  # the method grades nothing (grpo): a wrong response is 0
        return out, None, grader
    if question is None and spec.judges:
        raise ValueError(
            "sgpo's reward function needs the problem text for the step judge in extra_info['question'] "
            f"(or 'problem'); this row's extra_info has keys {sorted(extra_info)}"
        )
    if not req.steps:  # never sent to the judge, and a failure all the same (sgpo.grading)
        out.update(score=UNKNOWN_SCORE, judge_status="no_steps")
        _count(no_steps=1)
        return out, None, grader
    if not spec.judges:  # a judge-free method grades exactly what a judge could: a response with steps
        out.update(score=grader.reward(generator=grader.generator(problem, solution_str)), judge_status=DRAWN)
        return out, None, grader
    if defer is True:  # sgpo's reward manager asks first, and judges only if the group needs it
        out["judge_status"] = DEFERRED
        return out, None, grader
    return out, req, grader


def _finish(out: dict[str, Any], slot: Slot, grader: _Grader) -> dict[str, Any]:
    """The fields of a judged wrong response: its graded score, or UNKNOWN_SCORE without a usable verdict."""
    verdict = slot.verdict
    out.update(judged=1, judge_status=verdict.status if verdict is not None else "error")
    if slot.ok and verdict is not None:
        out.update(score=grader.reward(slot.rts), first_error=int(verdict.first_error), rts=float(slot.rts))
        _count(judged=1)
    else:
        if verdict is not None and verdict.ok:
            out["judge_status"] = INVALID  # "ok" but unusable (an index out of range): a failure
        out["score"] = UNKNOWN_SCORE
        _count(judged=1, judge_failures=1)
    return out


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  reward_router_address: str | None = None, reward_model_tokenizer: Any = None,
                  **kwargs: Any) -> dict[str, Any]:
    """Score one response (see the module docstring for the fields and ``reward_kwargs``)."""
    out, req, grader = _prepare(data_source, solution_str, ground_truth, extra_info, reward_router_address, kwargs)
    return out if req is None or grader.batcher is None else _finish(out, grader.batcher.ask(req), grader)


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                              reward_router_address: str | None = None, reward_model_tokenizer: Any = None,
                              **kwargs: Any) -> dict[str, Any]:
    """:func:`compute_score` for verl's event loop (verl awaits an ``async def`` reward function).

    Verification runs in the loop's thread pool, as verl runs a plain function; the wait for the
    judge holds no thread, so every wrong response the worker is scoring at once goes into one judge
    batch (:class:`~sgpo.integrations.verl.batching.AsyncBatcher`), not only as many as the pool has threads.
    """
    loop = asyncio.get_running_loop()
    out, req, grader = await loop.run_in_executor(None, functools.partial(
        _prepare, data_source, solution_str, ground_truth, extra_info, reward_router_address, kwargs))
    if req is None or grader.batcher is None:
        return out
    return _finish(out, await AsyncBatcher.of(grader.batcher, loop).ask(req), grader)


__all__ = ["DEFERRED", "DEFER_KEY", "DRAWN", "JUDGE_NOW", "STATS", "TASKS", "compute_score", "compute_score_async", "judge_stats"]

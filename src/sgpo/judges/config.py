"""Judge configuration and the factory that builds a judge from it.

One ``judge:`` section picks the kind and carries a sub-section per kind; only the sub-section
of the chosen kind is read. Example (YAML)::

    judge:
      kind: llm_http
      http: {base_url: http://127.0.0.1:8000/v1, model: Qwen/QwQ-32B, concurrency: 32}
      llm: {max_tokens: 4096, samples: 3, temperature: 0.6}
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sgpo.errors import ConfigError
from sgpo.files.config import load_yaml, to_container, validate
from sgpo.judges.base import StepJudge
from sgpo.judges.cached import CachedJudge
from sgpo.judges.noisy import NoisyJudge
from sgpo.judges.prm import LazyPRMJudge, PRMJudge
from sgpo.models.packaged import PACKAGED, check_model_dir

if TYPE_CHECKING:
    from sgpo.tasks.base import Task

JUDGE_KINDS = ("rule", "llm_http", "llm_local", "prm", "rollout")

#: Upper bounds shared with the training config: far above any real setting, low enough that a
#: typo (``1e20``) is a config error instead of a process that spins or runs out of memory.
#: Items per batch (requests, responses, solutions).
MAX_BATCH = 1 << 20
#: Tokens of one reply or response (1M).
MAX_TOKENS = 1 << 20
#: A wait, in seconds (one day): beyond it timers overflow, and nothing real waits that long.
MAX_SECONDS = 86_400.0
#: Seeds go to Python, NumPy (which takes 0 .. 2**32 - 1) and torch generators.
Seed = Annotated[int, Field(ge=0, lt=2**32)]


class _Section(BaseModel):
    # NaN or infinity in a float option is always a mistake (a NaN threshold compares false with
    # everything, an infinite timeout overflows the HTTP client's timer): refused for every field.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class LLMConfig(_Section):
    """What an LLM judge (``llm_http`` or ``llm_local``) is asked, and how its replies are read."""

    template: str | None = None
    """User-message template (placeholders in :mod:`sgpo.judges.prompts`); None: the built-in one."""
    template_file: str | None = None
    """Read the template from this file instead (give ``template`` or ``template_file``, not both)."""
    system: str | None = "default"
    """System message; ``default`` for the built-in one, None or "" for none."""
    samples: int = Field(default=1, ge=1, le=1024)
    """Replies per request; above 1 the verdict is their majority vote (needs temperature > 0)."""
    temperature: float = Field(default=0.0, ge=0.0)
    """Sampling temperature; 0 is greedy."""
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    """Nucleus sampling; None leaves the backend's default."""
    max_tokens: int = Field(default=1024, ge=1, le=MAX_TOKENS)
    """Longest reply; reasoning judges (QwQ, o4-mini) need thousands."""


class HTTPConfig(_Section):
    """Where the ``llm_http`` judge's OpenAI-compatible server is, and how to talk to it."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """API root (vLLM and SGLang serve ``/v1``; OpenAI is ``https://api.openai.com/v1``)."""
    model: str | None = None
    """Model name sent with each request; None: the first model the server lists."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable with the API key (sent only when set; local servers need none)."""
    timeout_s: float = Field(default=120.0, gt=0, le=MAX_SECONDS)
    """Total deadline of one HTTP request."""
    max_retries: int = Field(default=3, ge=0, le=100)
    """Extra attempts after a 429, a 5xx or a connection error."""
    backoff_s: float = Field(default=0.5, ge=0, le=MAX_SECONDS)
    """First retry waits about this long; each further retry doubles it (with jitter)."""
    backoff_max_s: float = Field(default=8.0, ge=0, le=MAX_SECONDS)
    """Longest wait between retries (also caps a server's Retry-After)."""
    retry_timeouts: bool = False
    """Also retry requests that hit ``timeout_s``."""
    concurrency: int = Field(default=16, ge=1, le=4096)
    """Most requests in flight at once."""
    use_n: bool = False
    """Ask for all samples in one request with the API's ``n`` (vLLM, SGLang, OpenAI support it)."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Merged into every request body, e.g. ``{chat_template_kwargs: {enable_thinking: false}}``."""
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """Body field for the reply length limit; OpenAI's o-series models accept only ``max_completion_tokens``."""


class LocalConfig(_Section):
    """The ``llm_local`` judge's model, loaded in this process."""

    model: str = "smollm2"
    """Local model directory, or a packaged model name (``sgpo models list``)."""
    device: str = "cpu"
    """Torch device."""
    dtype: str = "auto"
    """``auto`` (as saved), ``float32``, ``bfloat16`` or ``float16``."""
    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH)
    """Conversations per generate call."""
    max_time_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    """Wall-time limit of one generate call (cut replies parse as invalid)."""
    threads: int | None = Field(default=None, ge=1, le=4096)
    """Torch CPU threads, set for the whole process when the model loads (None: torch's
    default). On a machine busy with other work, 1 can be many times faster than oversubscribing."""


class PRMConfig(_Section):
    """The ``prm`` judge: a process reward model that scores all steps in one forward pass."""

    model: str = "models/arith-judge"
    """Model directory (the default is where ``sgpo train-judge`` saves)."""
    format: Literal["auto", "qwen", "shepherd", "sgpo"] = "auto"
    """``qwen``: Qwen2.5-Math-PRM (class-1 probability at each step separator); ``shepherd``:
    Math-Shepherd (P('+') vs P('-') at each step tag); ``sgpo``: a judge from ``sgpo train-judge``;
    ``auto``: ``sgpo`` if the directory has one, else guessed from the model's config."""
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """A step whose score is below this is an error; the first such step is the verdict.
    None: the threshold a trained judge was tuned to (its ``sgpo_judge.json``), else 0.5."""
    device: str = "cpu"
    """Torch device."""
    dtype: str = "auto"
    """``auto`` (as saved), ``float32``, ``bfloat16`` or ``float16``."""
    batch_size: int = Field(default=16, ge=1, le=MAX_BATCH)
    """Responses per forward pass."""
    max_length: int = Field(default=4096, ge=16, le=MAX_TOKENS)
    """Longest input in tokens; a longer one is cut at the end. An error found among the steps
    that fit is reported; otherwise the verdict is ``invalid`` (the cut steps were not checked)."""
    step_separator: str | None = None
    """Override the format's step separator (``<extra_0>`` for qwen, ``ки`` for shepherd, ``<step>`` for sgpo)."""
    system: str | None = "default"
    """System message for the qwen format's chat template; ``default`` is Qwen's own."""
    trust_remote_code: bool = False
    """Allow the model's own code (Qwen2.5-Math-PRM ships a custom model class)."""
    threads: int | None = Field(default=None, ge=1, le=4096)
    """Torch CPU threads, set process-wide when the model loads (None: torch's default)."""


class RolloutJudgeConfig(_Section):
    """The ``rollout`` judge: Monte-Carlo first-error estimates from the policy being trained
    (:mod:`sgpo.judges.montecarlo`). Needs no judge model; costs sampled tokens (logged as
    ``judge/sampled_tokens``). The trainer binds the live policy; elsewhere the judge fails every verdict."""

    n: int = Field(default=1, ge=1, le=1024)
    """Completions per probed prefix (N)."""
    min_success: int = Field(default=1, ge=1, le=1024)
    """A prefix is right when at least this many of its N completions reach the answer (<= n)."""
    temperature: float = Field(default=0.0, ge=0.0)
    """Sampling temperature of the completions; 0 is greedy (then n=1 is enough: completions are identical).
    Greedy is the default because on the arithmetic task it gave the best F1 at the lowest cost
    (BENCHMARKS.md, judge quality): a tiny policy's greedy continuation of a right prefix is almost always right."""
    max_new_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Longest completion; None: the trainer's ``rollout.max_new_tokens``."""
    max_tokens_per_verdict: int | None = Field(default=None, ge=1, le=MAX_BATCH * MAX_TOKENS)
    """Most sampled tokens one verdict may cost; a probe that could exceed it is not started and the
    verdict fails as ``timeout`` (the response keeps its outcome reward). None: no cap."""
    batch_size: int = Field(default=512, ge=1, le=MAX_BATCH)
    """Sequences per generate call."""
    seed: Seed = 0
    """Seed of the completions' own RNG (the training sampler's RNG is left untouched)."""


class JudgeConfig(_Section):
    """Which step judge SGPO asks, and the wrappers around it."""

    kind: Literal["rule", "llm_http", "llm_local", "prm", "rollout"] = "rule"
    """``rule``: the task's exact rule judge (the arithmetic task has one); ``llm_http``: a prompted
    LLM behind an OpenAI-compatible server (see ``http``, ``llm``); ``llm_local``: a prompted LLM in
    this process (see ``local``, ``llm``); ``prm``: a process reward model or a trained judge (see ``prm``);
    ``rollout``: Monte-Carlo estimates from the policy being trained, no judge model (see ``rollout``)."""
    llm: LLMConfig = Field(default_factory=LLMConfig)
    """Prompt, sampling and voting of the LLM judges."""
    http: HTTPConfig = Field(default_factory=HTTPConfig)
    """Server of the ``llm_http`` judge."""
    local: LocalConfig = Field(default_factory=LocalConfig)
    """Model of the ``llm_local`` judge."""
    prm: PRMConfig = Field(default_factory=PRMConfig)
    """Model of the ``prm`` judge."""
    warn_failure_frac: float = Field(default=0.5, gt=0.0, le=1.0)
    """Warn (console and report.md) when a training step's judge fails on at least this share of
    the responses it judged (``sgpo/judge_failures`` / ``sgpo/judged_responses``): a failed verdict
    leaves its response at advantage 0, so a judge that is down turns SGPO into plain GRPO."""
    rollout: RolloutJudgeConfig = Field(default_factory=RolloutJudgeConfig)
    """Sampling of the ``rollout`` judge."""
    max_failure_frac: float | None = Field(default=None, gt=0.0, le=1.0)
    """Stop the run (exit 1, one line naming the step) when a step's failure share reaches this,
    before that step's update, so the last checkpoint was trained with a working judge; resume
    once the judge is back. None: never stop (failures are counted and warned about)."""
    max_steps: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Merge a response's steps to at most this many before judging (None: no limit)."""
    noise_p: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability of replacing a verdict by a wrong one (NoisyJudge), to study judge errors."""
    noise_mode: Literal["shift", "random"] = "shift"
    """How a noisy verdict is wrong: first-error index shifted by one step, or drawn at random."""
    noise_seed: Seed = 0
    """Seed of the noise."""
    cache: bool = True
    """Remember verdicts keyed by (problem, steps, reference)."""
    cache_size: int | None = Field(default=100_000, ge=1)
    """Most verdicts kept in the cache (least recently used go first); None: unbounded."""


def load_judge_config(path: str | Path) -> JudgeConfig:
    """A JudgeConfig from a YAML or JSON file: a judge section alone, or any file with a top-level
    ``judge:`` section (a training config works too). Bad files are one-line ConfigErrors."""
    data = to_container(load_yaml(path), str(path))
    if data is None:
        data = {}
    prefix = ""
    if isinstance(data, dict) and "judge" in data:
        data, prefix = data["judge"], "judge."
    return validate(JudgeConfig, data, str(path), prefix)


def _llm_judge(cfg: JudgeConfig, backend) -> StepJudge:
    from sgpo.judges.llm import LLMJudge
    from sgpo.judges.prompts import DEFAULT_SYSTEM, load_template

    system = DEFAULT_SYSTEM if cfg.llm.system == "default" else (cfg.llm.system or None)
    return LLMJudge(backend, load_template(cfg.llm.template, cfg.llm.template_file), system, cfg.llm.samples)


def build_base_judge(cfg: JudgeConfig, task: "Task | None" = None) -> StepJudge:
    """The judge of ``cfg.kind`` without wrappers. Model-backed judges import their heavy
    dependencies here, not at module import, and load models only on first use."""
    if cfg.kind == "rule":
        judge = task.rule_judge() if task is not None else None  # a task without one may raise, saying which judges to use
        if judge is None:
            raise ValueError(f"judge.kind=rule needs a task with a rule judge; task {task.name if task else None!r} has none")
        return judge
    if cfg.kind == "llm_http":
        from sgpo.judges.llm_http import OpenAIChatBackend

        h, llm = cfg.http, cfg.llm
        check_base_url(h.base_url)
        backend = OpenAIChatBackend(
            h.base_url, h.model, h.api_key_env, h.timeout_s, h.max_retries, h.backoff_s, h.backoff_max_s,
            h.concurrency, llm.temperature, llm.top_p, llm.max_tokens, h.use_n, h.retry_timeouts, h.extra_body,
            h.max_tokens_param,
        )
        return _llm_judge(cfg, backend)
    if cfg.kind == "llm_local":
        from sgpo.judges.llm_local import TransformersChatBackend

        lo, llm = cfg.local, cfg.llm
        if lo.model not in PACKAGED or Path(lo.model).exists():  # a packaged name is prepared on first use
            check_model_dir(lo.model, "judge.local.model")
        backend = TransformersChatBackend(lo.model, lo.device, lo.dtype, lo.batch_size, llm.temperature, llm.top_p,
                                          llm.max_tokens, lo.max_time_s, threads=lo.threads)
        return _llm_judge(cfg, backend)
    if cfg.kind == "prm":
        check_model_dir(cfg.prm.model, "judge.prm.model")
        return LazyPRMJudge(lambda: _load_prm(cfg.prm), cfg.prm.model)
    if cfg.kind == "rollout":
        from sgpo.judges.montecarlo import RolloutJudge, task_verifier

        ro = cfg.rollout
        if task is None:
            raise ValueError("judge.kind=rollout needs a task (its outcome verifier decides which completions are right)")
        if ro.min_success > ro.n:
            raise ConfigError(f"judge.rollout.min_success ({ro.min_success}) must be <= judge.rollout.n ({ro.n})")
        return RolloutJudge(task_verifier(task), ro.n, ro.min_success, ro.max_tokens_per_verdict,
                            "\n" if task.step_mode == "line" else "\n\n", ro.seed)
    raise ValueError(f"unknown judge kind {cfg.kind!r}; choose one of: {', '.join(JUDGE_KINDS)}")  # pragma: no cover


def check_base_url(url: str) -> None:
    """A malformed ``judge.http.base_url`` is bad input, found when the judge is built; a
    well-formed one that nobody answers is an outage, counted as failed verdicts while the run goes on."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        raise ConfigError(f"judge.http.base_url={url!r} is not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"judge.http.base_url={url!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8000/v1")


def _load_prm(c: PRMConfig) -> PRMJudge:
    kwargs = {"batch_size": c.batch_size, "max_length": c.max_length}
    if c.step_separator is not None:
        kwargs["separator"] = c.step_separator
    if c.system != "default":
        kwargs["system"] = c.system or None
    judge = PRMJudge.from_pretrained(c.model, c.format, c.threshold, c.device, c.dtype, c.trust_remote_code, **kwargs)
    if c.threads is not None:
        import torch

        torch.set_num_threads(c.threads)
    return judge


def build_judge(cfg: JudgeConfig, task: "Task | None" = None) -> StepJudge:
    """The judge ``cfg`` describes, wrapped in noise (innermost) then cache."""
    judge = build_base_judge(cfg, task)
    if cfg.noise_p > 0:
        judge = NoisyJudge(judge, cfg.noise_p, cfg.noise_mode, cfg.noise_seed)
    if cfg.cache:
        judge = CachedJudge(judge, cfg.cache_size)
    return judge

"""Run configuration: YAML files plus dotted command-line overrides, validated before anything runs.

    cfg = load_config("configs/arith.yaml", ["algorithm.method=grpo", "rollout.group_size=8"])

Every option is documented where it is declared. Unknown keys and bad values raise
:class:`ConfigError`, which names the key and the valid choices.

Values that cannot be trained on are bad values too: no float option accepts NaN or infinity
(``allow_inf_nan=False`` on every section, here and in the judge's), and sizes have upper bounds
(the ``MAX_*`` constants here and in :mod:`sgpo.judges.config`) far above any run one machine
holds, so that a typo such as ``rollout.prompts_per_step=1e20`` is an error instead of a run that
spins forever or exhausts memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from omegaconf import OmegaConf
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sgpo.judges.config import MAX_BATCH, MAX_TOKENS, JudgeConfig, Seed

#: Responses per prompt (G), and samples per problem in evaluation.
MAX_GROUP = 1024
#: Prompts per RL step (N); the batch holds N * G responses.
MAX_PROMPTS = 65_536
#: Problems drawn by the generator or read from files (about 0.5 KB of memory each).
MAX_PROBLEMS = 10_000_000
#: Layers, and width, of the built-in tiny model (larger policies come from ``model.path``).
MAX_TINY_LAYERS, MAX_TINY_WIDTH = 128, 8192

from sgpo.files.config import load_yaml, to_container, validate

if TYPE_CHECKING:
    from sgpo.core import ShapingParams


def _registered(registry: str) -> AfterValidator:
    """The value must name an entry of ``sgpo.core.<registry>``, read at validation (so a method registered
    by the user's code counts, and torch is not imported for ``sgpo COMMAND --help``)."""

    def check(value: str) -> str:
        from sgpo import core

        if value not in getattr(core, registry):
            raise ValueError(f"choose one of: {', '.join(map(repr, getattr(core, registry)))}")
        return value

    return AfterValidator(check)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
                              allow_inf_nan=False)


class TaskConfig(_Section):
    name: Literal["arith", "math"] = "arith"
    """The task: ``arith`` is the built-in multi-step arithmetic task with an exact rule judge;
    ``math`` reads problems from files (the ``data`` section; the built-in word-problem set by
    default) and checks answers with math-verify."""
    n_ops: int = Field(default=4, ge=1, le=1000)
    """Operations per problem (solution steps before the answer line)."""
    start_max: int = Field(default=20, ge=1)
    """Start value drawn from 1..start_max."""
    operand_max: int = Field(default=20, ge=1)
    """Operand of add/sub drawn from 1..operand_max."""
    factor_max: int = Field(default=5, ge=2)
    """Operand of mul/div drawn from 2..factor_max."""
    ops: list[Literal["add", "sub", "mul", "div"]] = ["add", "sub", "mul"]
    """Operations allowed."""
    value_max: int = Field(default=999, ge=1)
    """Intermediate values stay within 0..value_max."""
    n_train: int = Field(default=4000, ge=1, le=MAX_PROBLEMS)
    """Training problems (drawn once; RL cycles through them in a seeded order)."""
    n_eval: int = Field(default=200, ge=1, le=MAX_PROBLEMS)
    """Held-out validation problems for periodic evaluation."""
    seed: Seed = 0
    """Seed of the problem generator (independent of the training seed)."""
    system_prompt: str | None = None
    """System prompt (chat template) or preamble (plain template); None: the task's default."""
    prompt_template: Literal["auto", "chat", "plain"] = "auto"
    """``chat``: the tokenizer's chat template; ``plain``: question and newline, for base models;
    ``auto``: chat when the tokenizer has a template."""
    answer_extraction: list[Literal["boxed", "answer_line", "last_number"]] = Field(
        default=["boxed", "answer_line"], min_length=1
    )
    """Math only: how the final answer is found in a response, tried in order: ``boxed`` the last
    ``\\boxed{...}``; ``answer_line`` what follows the last "answer is", "Answer:" or "####";
    ``last_number`` the last number (lenient: rewards answers the model did not mark)."""
    verify_timeout_s: float = Field(default=5.0, gt=0, le=3600)
    """Math only: seconds one math-verify comparison may take; a check that overruns is killed
    and counts as wrong (its status is ``timeout``)."""


class DataConfig(_Section):
    """Where problems and stored rollouts come from (``task.name=math``, ``train.mode=offline``)."""

    train_files: list[str] = []
    """JSONL, JSON or Parquet files of training problems; empty: the built-in math word-problem set."""
    eval_files: list[str] = []
    """Held-out problems for periodic evaluation; empty: the built-in set's validation split."""
    problem_field: str = "problem"
    """Field holding the problem text."""
    answer_field: str = "answer"
    """Field holding the reference final answer."""
    reference_field: str | None = "solution"
    """Field holding a step-by-step reference solution (judges may see it); None: no reference."""
    id_field: str | None = None
    """Field holding a problem id; None: ids are ``file:line``."""
    rollouts: str | None = None
    """A rollouts JSONL written by ``sgpo rollout``: what ``train.mode=offline`` trains on."""


class ModelConfig(_Section):
    path: str | None = None
    """Local Hugging Face model directory. None builds the tiny model below (with the task's tokenizer)."""
    arch: Literal["llama", "qwen2"] = "llama"
    """Architecture of the tiny model."""
    n_layers: int = Field(default=2, ge=1, le=MAX_TINY_LAYERS)
    """Layers of the tiny model."""
    d_model: int = Field(default=128, ge=8, le=MAX_TINY_WIDTH)
    """Hidden size of the tiny model."""
    n_heads: int = Field(default=4, ge=1, le=MAX_TINY_WIDTH, validate_default=True)
    """Attention heads of the tiny model: they must split ``d_model`` into heads of an even width
    (rotary embeddings rotate pairs of dimensions)."""
    lora_r: int = Field(default=0, ge=0, le=MAX_TINY_WIDTH)
    """Rank of LoRA adapters (needs ``peft``: ``pip install sgpo[lora]``); 0 trains every weight. With
    LoRA only the adapters train and checkpoints hold only the adapters, so a large policy fits
    in memory with its optimizer state. The warm-up, if any, still trains the full model first."""
    lora_alpha: float = Field(default=16.0, gt=0)
    """LoRA scaling numerator: the adapter's update is scaled by lora_alpha / lora_r."""
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the adapters' input during updates."""
    lora_target_modules: list[str] = []
    """Names of the linear layers that get adapters (e.g. [q_proj, v_proj]); empty: every linear
    layer except the output head (peft's ``all-linear``)."""
    disable_dropout: bool = True
    """Set every dropout probability of the policy (adapters included) to 0 for RL, as TRL's
    ``disable_dropout`` does: old log-probs are taken in eval mode and the update runs in train
    mode, so with dropout the importance ratio of an on-policy sample would not start at 1."""

    @field_validator("n_heads")
    @classmethod
    def _heads_split_the_width(cls, n_heads: int, info: ValidationInfo) -> int:
        d_model = info.data.get("d_model")
        if info.data.get("path") is None and d_model is not None and (problem := head_split_problem(d_model, n_heads)):
            raise ValueError(problem)
        return n_heads


def head_split_problem(d_model: int, n_heads: int) -> str | None:
    """Why a tiny model of width ``d_model`` cannot have ``n_heads`` heads, or None if it can
    (transformers would refuse it only when the model is built, after any warm-up data work)."""
    if d_model % n_heads:
        return f"must divide d_model={d_model} (heads of equal width)"
    if (d_model // n_heads) % 2:
        return f"gives heads of odd width {d_model // n_heads} with d_model={d_model}; rotary embeddings need an even width"
    return None


class WarmupConfig(_Section):
    """Supervised warm-up on (noisy) reference solutions before RL; its checkpoint is cached and reused."""

    steps: int = Field(default=0, ge=0)
    """Optimizer steps of supervised training; 0 skips the warm-up."""
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH)
    """Solutions per step."""
    lr: float = Field(default=2e-3, gt=0)
    """Peak learning rate (cosine decay after 5% warm-up)."""
    noise_p: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability that a solution line's result is corrupted (and the chain continues from the wrong
    value), so the warmed-up policy has the format but only partial competence."""
    seed: Seed = 0
    """Seed of the warm-up (model init, data order, noise)."""
    cache_dir: str = "~/.cache/sgpo/warmup"
    """Where warm-up checkpoints are kept, keyed by a hash of everything that shapes them."""


class RolloutConfig(_Section):
    group_size: int = Field(default=8, ge=2, le=MAX_GROUP)
    """G: responses sampled per prompt. Group statistics need at least 2."""
    prompts_per_step: int = Field(default=16, ge=1, le=MAX_PROMPTS)
    """N: prompts per RL step (the batch holds N * G responses)."""
    temperature: float = Field(default=1.0, gt=0)
    """Sampling temperature (also applied to the log-probs in the loss)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling threshold."""
    mask_truncated_completions: bool = False
    """Leave responses cut at ``max_new_tokens`` (no stop token) out of the loss, as TRL's option of
    that name does: a cut response is judged on an unfinished answer. They still count in the
    group's rewards and statistics."""
    max_new_tokens: int = Field(default=48, ge=1, le=MAX_TOKENS)
    """Longest response, in tokens."""
    sampler: Literal["auto", "kv", "hf"] = "auto"
    """How responses are sampled (training and evaluation): ``kv`` a decode loop over a KV cache
    allocated once (``sgpo.sampling.kv_cache``; Llama-pattern models: llama, qwen2), which also reports each
    token's sampling log-prob and entropy; ``hf`` transformers' ``generate``, which also applies
    the model's generation config (e.g. its logits processors); ``auto`` ``kv`` where the model
    supports it, else ``hf``. BENCHMARKS.md ("Throughput") has the speeds."""
    is_cap: float = Field(default=3.0, ge=0)
    """Truncated importance-sampling correction of the gap between the sampler's log-probs and the
    training forward's (the KV-cache loop and the full forward round differently in bf16), as
    TRL's ``vllm_importance_sampling_correction`` with mode ``token_truncate`` does: each token's
    policy-gradient loss is weighted by min(exp(logp_train - logp_sample), is_cap), the training
    log-prob detached. 0 turns it off. Applies only with a sampler that reports log-probs
    (``kv``); the ratios are logged as ``sampling/is_ratio_{mean,min,max}``."""


class AlgorithmConfig(_Section):
    method: Annotated[str, _registered("METHODS")] = "sgpo"
    """What to do with all-negative groups: ``grpo`` nothing, ``sgpo`` judge-graded rewards, ``dapo``
    drop zero-variance groups, ``ngrpo`` a virtual reward-1 sample, ``random`` random RTS (control);
    any name in ``sgpo.core.METHODS``."""
    scope: Annotated[str, _registered("SCOPES")] = "all_negative"
    """Which wrong responses SGPO grades: ``all_negative`` those of all-negative groups, ``all_incorrect``
    every wrong response (``sgpo.core.SCOPES``)."""
    mapping: Annotated[str, _registered("REWARD_MAPPINGS")] = "logistic"
    """RTS -> graded reward: ``logistic`` sigmoid(beta (RTS - gamma)), ``linear`` linear_scale * RTS, or
    ``raw`` RTS (1 - 1e-3) (``sgpo.core.REWARD_MAPPINGS``, which names each mapping's options)."""
    beta: float = 5.0
    """Steepness of the logistic mapping."""
    gamma: float = 0.5
    """Midpoint of the logistic mapping."""
    linear_scale: float = Field(default=0.5, gt=0, lt=1)
    """Slope of the linear mapping."""
    rts_unit: Literal["steps", "tokens"] = "steps"
    """RTS as the share of steps, or of tokens, before the first error."""
    scale: Literal["group", "batch", "none"] = "group"
    """Advantage denominator: group std, batch std, or none (Dr. GRPO)."""
    eps_low: float = Field(default=0.2, ge=0)
    """Lower clip range: ratios below 1 - eps_low are clipped."""
    eps_high: float = Field(default=0.28, ge=0)
    """Upper clip range: ratios above 1 + eps_high are clipped (DAPO's clip-higher)."""
    beta_kl: float = Field(default=0.0, ge=0)
    """k3 KL coefficient to a frozen reference; 0 loads no reference model."""
    aggregation: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"] = "token_mean"
    """How per-token losses become one number (DAPO, GRPO, Dr. GRPO)."""
    dapo_resample_rounds: int = Field(default=0, ge=0, le=100)
    """DAPO (a method that over-samples, ``sgpo.core.Method.oversamples``) only: extra rounds of prompts
    sampled to refill groups dropped for zero variance."""

    def mapping_params(self) -> dict[str, float]:
        from sgpo.core import REWARD_MAPPINGS  # torch: not at import

        return REWARD_MAPPINGS.get(self.mapping).params(self.model_dump())

    def shaping_params(self) -> "ShapingParams":
        """Scope, mapping with its parameters and advantage scale, as ``sgpo.core`` takes them."""
        from sgpo.core import ShapingParams  # torch: not at import

        return ShapingParams(self.scope, self.mapping, self.mapping_params(), self.scale)


class OptimConfig(_Section):
    lr: float = Field(default=3e-4, gt=0)
    """Peak learning rate of AdamW."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay."""
    warmup_steps: int = Field(default=5, ge=0)
    """Optimizer steps of linear learning-rate warm-up (then constant)."""
    grad_clip: float = Field(default=1.0, gt=0)
    """Clip the global gradient norm to this."""
    ppo_epochs: int = Field(default=1, ge=1, le=1000)
    """mu: passes over each batch of rollouts."""
    mini_batch_size: int = Field(default=64, ge=1, le=MAX_BATCH)
    """Responses per optimizer step."""


class TrainConfig(_Section):
    mode: Literal["online", "offline"] = "online"
    """``online`` samples fresh responses every step; ``offline`` trains on the fixed rollouts of
    ``data.rollouts``, with their stored behaviour log-probs in the importance ratio."""
    steps: int = Field(default=100, ge=0)
    """RL steps."""
    seed: Seed = 0
    """Seed of sampling, data order and everything random in training."""
    attention: Literal["auto", "eager", "sdpa"] = "auto"
    """Attention kernel of the policy's (and the reference's) log-prob and training passes: ``eager``
    (matmul + softmax), ``sdpa`` (torch's scaled_dot_product_attention), ``auto`` eager when training
    online on CPU, where SDPA's flash kernel is the slower one, its backward pass most (tiny
    default, 160 responses: forward + backward 0.50 s eager against 0.79 s sdpa), and the model's
    own choice elsewhere
    (offline: the kernel ``sgpo rollout`` computed the stored log-probs with, so they match bit for bit).
    The KV-cache sampler has its own attention. A train option, not a model one: it does not
    change what the warm-up (cached by model settings) computes."""
    bf16: bool = True
    """bf16 autocast for forward passes (CPU and CUDA) where the hardware supports it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train; ``auto`` picks CUDA when available."""
    eval_every: int = Field(default=20, ge=0)
    """Evaluate on the held-out split every this many steps (and at the end); 0: only at the end."""
    eval_k: int = Field(default=4, ge=1, le=MAX_GROUP)
    """avg@k: samples per problem for sampled evaluation (greedy accuracy is always logged)."""
    save_every: int = Field(default=50, ge=0)
    """Checkpoint every this many steps (and at the end); 0: only at the end."""
    max_skipped_steps: int = Field(default=3, ge=1)
    """A step whose loss or gradient is NaN or infinite is skipped: no update reaches the weights
    (nor the optimizer state or the schedule), and ``train/skipped_steps`` counts it (running total).
    After this many skipped steps in a row the run stops with one line naming the step and exit
    code 1; nothing is checkpointed after the last good step. The warm-up applies the same limit."""
    out_dir: str = "runs/train"
    """Run directory (config.yaml, metrics.jsonl, samples.jsonl, checkpoints/, report.md)."""
    log_samples: int = Field(default=8, ge=0)
    """Completions per step written to samples.jsonl."""
    tensorboard: bool = False
    """Also write TensorBoard event files (needs the ``tensorboard`` package)."""
    progress: bool = True
    """Show a progress bar."""


class Config(_Section):
    task: TaskConfig = TaskConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    warmup: WarmupConfig = WarmupConfig()
    rollout: RolloutConfig = RolloutConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    judge: JudgeConfig = JudgeConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()


from sgpo.errors import ConfigError  # noqa: E402,F401 - re-exported for the modules that import it from here


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Load a YAML config (or the defaults), apply ``key=value`` overrides, validate."""
    base = OmegaConf.create()
    source = "defaults"
    if path is not None:
        base = load_yaml(path)  # the YAML parser's complaint as file:line
        source = str(path)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. algorithm.method=grpo)")
    # verl and TRL command lines say trainer.*; here that section is called train.
    overrides = [("train." + o[len("trainer."):]) if o.startswith("trainer.") else o for o in overrides]
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    except Exception as e:
        raise ConfigError(f"cannot apply overrides {list(overrides)}: {str(e).strip().splitlines()[0]}") from None
    source += f" + overrides {list(overrides)}" if overrides else ""
    data = to_container(merged, source) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    return validate(Config, data, source)


def save_config(cfg: Config, path: str | Path) -> None:
    OmegaConf.save(OmegaConf.create(cfg.model_dump(mode="json")), path)

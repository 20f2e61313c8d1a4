"""Policies and tokenizers: tiny models built in code, and any local Hugging Face directory.

Nothing here downloads: a model comes from a local directory, or is built from a config.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from sgpo.errors import DataError, MissingInputError
from sgpo.models.packaged import check_model_dir

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
#: Multi-character pieces of the arithmetic task that get one token each, so that a solution
#: line like "7 + 5 = 12" is 7 tokens instead of 10.
ARITH_PIECES = ("Start with", "Add", "Subtract", "Multiply by", "Divide by", "Answer:", " + ", " - ", " * ", " / ", " = ")


def arith_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer built in code: the task's word pieces, then one token per printable character.

    Digits are single tokens, so numbers are spelled out digit by digit; decoding is exact for any
    printable ASCII text.
    """
    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS.values(), *ARITH_PIECES, *string.printable]:
        vocab.setdefault(token, len(vocab))
    pieces = "|".join(re.escape(p) for p in sorted(ARITH_PIECES, key=len, reverse=True))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pieces + r"|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", **SPECIAL_TOKENS)


def tiny_policy(
    tokenizer: PreTrainedTokenizerFast,
    arch: str = "llama",
    n_layers: int = 2,
    d_model: int = 128,
    n_heads: int = 4,
    max_positions: int = 512,
    seed: int = 0,
) -> torch.nn.Module:
    """A small causal LM (Llama or Qwen2 architecture) sized for ``tokenizer``, seeded."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if arch not in classes:
        raise ValueError(f"unknown tiny model arch {arch!r}; choose one of: {', '.join(classes)}")
    config_cls, model_cls = classes[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=4 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return model_cls(config)


def load_policy(path: str | Path, dtype: torch.dtype = torch.float32, key: str = ""):
    """Load a causal LM and its tokenizer from a local Hugging Face directory (never a hub id).

    A directory of LoRA adapters (a checkpoint of a ``model.lora_r > 0`` run) loads its base model
    from the local directory the adapters name, with the adapters merged in. A directory that is
    not a model is a one-line error naming ``key`` (the option that named it) and the path.
    """
    path = Path(path).expanduser()
    if not (path / "config.json").is_file() and (path / LORA_CONFIG).is_file():
        return _load_lora_merged(path, dtype)
    check_model_dir(path, key)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:  # files present but unreadable: the directory's fault
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        name = f"{key}={str(path)!r}" if key else str(path)
        raise DataError(f"{name}: cannot load the model ({type(e).__name__}: {first})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Decoder-only generation continues prompts at the right edge, so pad on the left.
    tokenizer.padding_side = "left"
    return model, tokenizer


# -- LoRA ------------------------------------------------------------------------------------------

#: Files peft writes for a model's adapters.
LORA_CONFIG, LORA_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


def apply_lora(model, r: int, alpha: float, dropout: float = 0.0, target_modules: list[str] | None = None, seed: int = 0):
    """Wrap ``model`` in LoRA adapters of rank ``r``; only the adapters stay trainable.

    The adapters start as the identity (B = 0), so the wrapped model computes what ``model`` did.
    Their random A matrices are drawn from a generator seeded with ``seed`` (the global RNG is
    left as it was), so a run builds the same adapters however its base was obtained.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - peft is a declared extra
        raise ImportError("model.lora_r > 0 needs peft: pip install -c constraints.txt 'sgpo[lora]'") from e
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules) if target_modules else "all-linear",
        task_type="CAUSAL_LM",
    )
    # manual_seed re-seeds CUDA too: fork the generators of the device the model is on.
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def is_lora(model) -> bool:
    """True for a model wrapped by :func:`apply_lora` (a peft model)."""
    return hasattr(model, "peft_config")


def _load_lora_merged(path: Path, dtype: torch.dtype):
    import json

    base = json.loads((path / LORA_CONFIG).read_text()).get("base_model_name_or_path")
    if not base or not (Path(base).expanduser() / "config.json").is_file():
        raise MissingInputError(
            f"{path} holds LoRA adapters whose base model {base!r} is not a local model directory "
            "(a tiny model built in code has none); resume the run with `sgpo train --resume`"
        )
    from peft import PeftModel

    model, _ = load_policy(base, dtype)
    model = PeftModel.from_pretrained(model, path, is_trainable=False).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def save_policy(model, tokenizer, path: str | Path) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)

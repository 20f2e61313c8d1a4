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


def load_policy(path: str | Path, dtype: torch.dtype = torch.float32):
    """Load a causal LM and its tokenizer from a local Hugging Face directory (never a hub id)."""
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model.path={str(path)!r} is not a local model directory (no config.json there)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Decoder-only generation continues prompts at the right edge, so pad on the left.
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    return model, tokenizer


def save_policy(model, tokenizer, path: str | Path) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)

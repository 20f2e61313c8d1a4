"""Batched sampling (transformers ``generate``, or the static-KV-cache loop of :mod:`sgpo.sampling.kv_cache`),
the log-probs the loss needs, and the batch layout (prompts left-padded, responses right-padded)
that sampling, rollouts files and training share."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sgpo.sampling import kv_cache


@dataclass
class Rollout:
    """B sampled sequences: a left-padded prompt block followed by a right-padded response block."""

    input_ids: torch.Tensor
    """[B, P + T] prompt then response tokens."""
    attention_mask: torch.Tensor
    """[B, P + T] 1 on real tokens (prompt and response), 0 on padding."""
    response_mask: torch.Tensor
    """[B, T] 1 on response tokens up to and including EOS."""
    texts: list[str]
    """B decoded responses, special tokens removed."""
    sample_logp: torch.Tensor | None = None
    """[B, T] log-prob of each response token under the weights that sampled it, at the sampling
    temperature (0 on padding); None where the sampler does not report it (``generate``)."""
    sample_entropy: torch.Tensor | None = None
    """[B, T] entropy of the sampling distribution at each response position (0 on padding), or None."""

    @property
    def prompt_len(self) -> int:
        return self.input_ids.shape[1] - self.response_mask.shape[1]

    def select(self, index: torch.Tensor) -> "Rollout":
        """The sequences at ``index`` ([M] long)."""
        pick = lambda t: None if t is None else t[index.to(t.device)]  # noqa: E731
        return Rollout(
            self.input_ids[index], self.attention_mask[index], self.response_mask[index], [self.texts[i] for i in index.tolist()],
            pick(self.sample_logp), pick(self.sample_entropy),
        )


def format_prompt(question: str, tokenizer, system_prompt: str | None = None, template: str = "auto") -> str:
    """The prompt text for ``question``.

    ``template``: ``chat`` applies the tokenizer's chat template (instruction-tuned models), ``plain``
    is the question and a newline (base models; the system prompt, if any, goes first), ``auto``
    is ``chat`` when the tokenizer has a chat template.
    """
    if template not in ("auto", "chat", "plain"):
        raise ValueError(f"template must be auto, chat or plain, got {template!r}")
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise ValueError("template='chat' but the tokenizer has no chat template; use 'plain' or 'auto'")
    if has_chat and template != "plain":
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": question}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Prompts are tokenized without special tokens (a chat template writes its own), so a base model
    # whose tokenizer starts every text with BOS gets it here, as it saw in pre-training.
    return bos_text(tokenizer) + (system_prompt + "\n\n" if system_prompt else "") + question + "\n"


def bos_text(tokenizer) -> str:
    """The BOS token's text if ``tokenizer`` puts BOS first when it adds special tokens, else ""."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return ""
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return tokenizer.bos_token if ids and ids[0] == bos else ""


def stop_ids(model, tokenizer) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and all of the model's generation-config EOS ids
    (chat models often stop at an end-of-turn token that is not the tokenizer's EOS)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for i in gen if isinstance(gen, (list, tuple)) else [gen]:
        if i is not None and i not in ids:
            ids.append(int(i))
    return ids


def truncated_rows(rollout: "Rollout", eos_ids: list[int]) -> torch.Tensor:
    """[B] bool: responses cut at the token limit (every response column used, the last not a stop id)."""
    last = rollout.input_ids[:, -1]
    ends = torch.isin(last, torch.tensor(eos_ids, device=last.device)) if eos_ids else torch.zeros_like(last, dtype=torch.bool)
    return (rollout.response_mask[:, -1] == 1) & ~ends


def resolve_sampler(sampler: str, model) -> str:
    """``auto`` -> ``kv`` if :mod:`sgpo.sampling.kv_cache` handles ``model``, else ``hf``; ``kv`` and ``hf`` as they are."""
    if sampler not in ("auto", "hf", "kv"):
        raise ValueError(f"sampler must be auto, hf or kv, got {sampler!r}")
    if sampler == "kv" and not kv_cache.supports(model):
        raise ValueError(f"sampler='kv' handles model types {', '.join(kv_cache.SUPPORTED)}; use 'hf' or 'auto'")
    return sampler if sampler != "auto" else ("kv" if kv_cache.supports(model) else "hf")


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    n: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    greedy: bool = False,
    sampler: str = "hf",
) -> Rollout:
    """Sample ``n`` responses to each prompt (prompt-major order: prompt 0's n responses first).

    ``sampler``: ``hf`` transformers' ``generate`` (honours the model's generation config, e.g.
    logits processors); ``kv`` the static-KV-cache loop of :mod:`sgpo.sampling.kv_cache` (Llama-pattern
    models; plain temperature / top-p sampling; also returns the sampling log-probs and
    entropies); ``auto`` ``kv`` where the model supports it, else ``hf``.
    Sampling draws from torch's global RNG, so a seeded run samples the same responses.
    """
    sampler = resolve_sampler(sampler, model)
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    device = next(model.parameters()).device
    ids = enc["input_ids"].repeat_interleave(n, dim=0).to(device)
    mask = enc["attention_mask"].repeat_interleave(n, dim=0).to(device)
    eos = stop_ids(model, tokenizer)
    if sampler == "kv":
        response, response_mask, logp, entropy = kv_cache.sample_tokens(
            model, ids, mask, max_new_tokens, eos, tokenizer.pad_token_id, temperature, top_p, greedy)
        texts = tokenizer.batch_decode(response, skip_special_tokens=True)
        return Rollout(torch.cat([ids, response], dim=1), torch.cat([mask, response_mask], dim=1), response_mask, texts,
                       logp, entropy)
    sampling = {} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": 0}
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos,
        **sampling,
    )
    response = out[:, ids.shape[1] :]
    # Everything after the first stop token is padding that generate filled in.
    is_eos = torch.isin(response, torch.tensor(eos, device=response.device))
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    response_mask = (~after_eos).long()
    response = response.masked_fill(after_eos, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(response, skip_special_tokens=True)
    return Rollout(torch.cat([ids, response], dim=1), torch.cat([mask, response_mask], dim=1), response_mask, texts)


def token_logprobs(
    model, rollout: Rollout, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of the response tokens under ``model`` at ``temperature``.

    Returns:
        logp: [B, T] log pi(y_t | y_<t) of each response token (0 on padding positions too).
        entropy: [B, T] entropy of the token distribution (no gradient), if ``with_entropy``.
    """
    position_ids = (rollout.attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=rollout.input_ids, attention_mask=rollout.attention_mask, position_ids=position_ids).logits
    T = rollout.response_mask.shape[1]
    # The logit at position i predicts token i + 1.
    logits = logits[:, -T - 1 : -1].float() / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    targets = rollout.input_ids[:, -T:]
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:  # a metric: no graph, so a training forward does not keep [B, T, V] more for it
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


@torch.no_grad()
def token_logprobs_chunked(
    model, rollout: Rollout, temperature: float, chunk: int, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`token_logprobs` over ``chunk`` sequences at a time (bounded activation memory), concatenated.

    Chunks keep the rollout's padded width, so each sequence's numbers do not depend on ``chunk``.
    Returns [B, T] log-probs and, if ``with_entropy``, [B, T] entropies.
    """
    parts = [token_logprobs(model, rollout.select(c), temperature, with_entropy) for c in torch.arange(len(rollout.texts)).split(chunk)]
    logp = torch.cat([lp for lp, _ in parts])
    return logp, torch.cat([e for _, e in parts]) if with_entropy else None


# -- batch layout ---------------------------------------------------------------------------------


def layout(
    prompt_ids: list[list[int]], response_ids: list[list[int]], texts: list[str], pad_id: int,
    prompt_width: int | None = None, response_width: int | None = None,
) -> Rollout:
    """Token ids as the trainer's batch layout: prompts left-padded to P, responses right-padded to T.

    Args:
        prompt_width, response_width: P and T; None: the longest prompt / response here. Fixed
            widths lay each sequence out the same way in any batch (see the module docstring).

    Returns:
        B sequences of width P + T, the layout ``generate`` produces.
    """
    B = len(prompt_ids)
    P, T = max(len(p) for p in prompt_ids), max(len(r) for r in response_ids)
    for name, longest, width in (("prompt", P, prompt_width), ("response", T, response_width)):
        if width is not None and longest > width:
            raise ValueError(f"a {name} of {longest} tokens does not fit {name}_width={width}")
    P, T = prompt_width or P, response_width or T
    input_ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros(B, P + T, dtype=torch.long)
    response_mask = torch.zeros(B, T, dtype=torch.long)
    for b, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        input_ids[b, P - len(p) : P] = torch.tensor(p)
        input_ids[b, P : P + len(r)] = torch.tensor(r)
        attention[b, P - len(p) : P + len(r)] = 1
        response_mask[b, : len(r)] = 1
    return Rollout(input_ids, attention, response_mask, list(texts))



def unpack(rollout: Rollout) -> list[tuple[list[int], list[int]]]:
    """(prompt_ids, response_ids) of each sequence of a batch, padding removed."""
    P = rollout.prompt_len
    return [
        (rollout.input_ids[b, :P][rollout.attention_mask[b, :P].bool()].tolist(),
         rollout.input_ids[b, P:][rollout.response_mask[b].bool()].tolist())
        for b in range(len(rollout.texts))
    ]


def on_responses(rollout: Rollout, values: torch.Tensor) -> list[list[float]]:
    """Per-token values ([B, T], e.g. log-probs) of each sequence's response tokens, padding removed."""
    return [values[b][rollout.response_mask[b].bool()].float().tolist() for b in range(len(rollout.texts))]


def to_device(rollout: Rollout, device) -> Rollout:
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return Rollout(rollout.input_ids.to(device), rollout.attention_mask.to(device), rollout.response_mask.to(device), rollout.texts,
                   move(rollout.sample_logp), move(rollout.sample_entropy))

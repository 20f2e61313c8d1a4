"""Batched sampling with transformers ``generate``, and the log-probs the loss needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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

    @property
    def prompt_len(self) -> int:
        return self.input_ids.shape[1] - self.response_mask.shape[1]

    def select(self, index: torch.Tensor) -> "Rollout":
        """The sequences at ``index`` ([M] long)."""
        return Rollout(
            self.input_ids[index], self.attention_mask[index], self.response_mask[index], [self.texts[i] for i in index.tolist()]
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
    return (system_prompt + "\n\n" if system_prompt else "") + question + "\n"


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
) -> Rollout:
    """Sample ``n`` responses to each prompt (prompt-major order: prompt 0's n responses first).

    Sampling draws from torch's global RNG, so a seeded run samples the same responses.
    """
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    device = next(model.parameters()).device
    ids = enc["input_ids"].repeat_interleave(n, dim=0).to(device)
    mask = enc["attention_mask"].repeat_interleave(n, dim=0).to(device)
    sampling = {} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": 0}
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sampling,
    )
    response = out[:, ids.shape[1] :]
    # Everything after the first EOS is padding that generate filled in.
    is_eos = response == tokenizer.eos_token_id
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
        entropy: [B, T] entropy of the token distribution, if ``with_entropy``.
    """
    position_ids = (rollout.attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=rollout.input_ids, attention_mask=rollout.attention_mask, position_ids=position_ids).logits
    T = rollout.response_mask.shape[1]
    # The logit at position i predicts token i + 1.
    logits = logits[:, -T - 1 : -1].float() / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    targets = rollout.input_ids[:, -T:]
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
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

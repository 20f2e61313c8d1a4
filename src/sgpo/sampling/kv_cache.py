"""Sampling with a preallocated KV cache and a lean decode step, for Llama-family models.

Measured on the project's CPU machine (BENCHMARKS.md, "Throughput"), transformers' ``generate``
spends most of each decode step outside the matmuls: building 4-D masks, concatenating the
dynamic KV cache, running logits processors and SDPA's flash kernel, which is slow for one
query per sequence. This loop calls the model's own modules (so LoRA adapters and any weight
dtype work unchanged) but writes keys and values into a cache allocated once, attends with two
batched matmuls, and stops when every sequence has stopped. Under bf16 on CPU the decode step's
plain ``nn.Linear`` layers use weights packed once per call for oneDNN (the kernel inductor uses):
for a few rows per matmul that reads the weights at about 1.5x the rate of ``F.linear``, with the
same results.

Only architectures whose layers are the Llama pattern (``llama``, ``qwen2``) are handled;
:func:`supports` says whether a model is one, and the caller falls back to ``generate`` if not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUPPORTED = ("llama", "qwen2")
_MASKED = -1e9  # additive score for padding keys: finite, so a fully padded query row gives no NaN
GROW = 16  # cache slots added at a time


def inner_model(model):
    """The ``*ForCausalLM`` module under a peft wrapper, if any."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports(model) -> bool:
    """Whether :func:`sample_tokens` can run ``model`` (a Llama-pattern causal LM without sliding windows)."""
    m = inner_model(model)
    cfg = getattr(m, "config", None)
    return (
        cfg is not None and cfg.model_type in SUPPORTED and not getattr(cfg, "use_sliding_window", False)
        and hasattr(getattr(m, "model", None), "rotary_emb") and hasattr(m, "lm_head")
    )


def _can_pack(model) -> bool:
    """Whether this torch has oneDNN's packed linear and the model is on CPU with bf16 compute."""
    ops = getattr(torch.ops, "mkldnn", None)
    if ops is None or not hasattr(ops, "_reorder_linear_weight") or not torch.backends.mkldnn.is_available():
        return False
    p = next(model.parameters())
    bf16 = p.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
    return p.device.type == "cpu" and bf16


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding. x: [B, H, S, D]; cos, sin: [B, 1, S, D]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float) -> torch.Tensor:
    """Grouped-query attention over the filled cache.

    q: [B, H, S, D]; k, v: [B, Hkv, L, D] (query head h reads key head h // (H / Hkv), as
    transformers' ``repeat_kv`` lays them out); bias: [B, 1, S, L] additive fp32 mask.
    Returns [B, H, S, D].
    """
    B, H, S, D = q.shape
    Hkv, L = k.shape[1], k.shape[2]
    rep = H // Hkv
    scores = torch.matmul(q.reshape(B, Hkv, rep * S, D), k.transpose(-1, -2)).float() * scale
    scores = scores.view(B, Hkv, rep, S, L) + bias[:, :, None]
    probs = torch.softmax(scores, dim=-1).to(v.dtype).view(B, Hkv, rep * S, L)
    return torch.matmul(probs, v).view(B, H, S, D)


class _Decoder:
    """One model's forward over new tokens, reading and extending a preallocated KV cache."""

    def __init__(self, model, batch: int, max_len: int, pack: bool = True):
        m = inner_model(model)
        self.body, self.head = m.model, m.lm_head
        cfg = m.config
        self.H, self.Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        attn = self.body.layers[0].self_attn
        self.D, self.scale = attn.head_dim, attn.scaling
        device = next(m.parameters()).device
        # Rotary tables for every position once: [max_len, D].
        probe = torch.zeros(1, 1, self.D, device=device)
        cos, sin = self.body.rotary_emb(probe, torch.arange(max_len, device=device)[None])
        self.cos, self.sin = cos[0], sin[0]
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.batch, self.max_len = batch, max_len
        # Packed for ``batch`` rows (a decode step); LoRA-wrapped layers are not nn.Linear and stay as they are.
        self.packed: dict[torch.nn.Module, torch.Tensor] = {}
        if pack and _can_pack(m):
            for module in m.modules():
                if type(module) is torch.nn.Linear:
                    w = module.weight.detach().to(torch.bfloat16)
                    self.packed[module] = torch.ops.mkldnn._reorder_linear_weight(w, batch)

    def _linear(self, module, x: torch.Tensor) -> torch.Tensor:
        """module(x), through its packed weight in a decode step. x: [B, S, in] -> [B, S, out]."""
        packed = self.packed.get(module)
        if packed is None or x.shape[0] * x.shape[1] != self.batch:
            return module(x)
        bias = None if module.bias is None else module.bias.detach().to(torch.bfloat16)
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        return torch.ops.mkldnn._linear_pointwise(flat, packed, bias, "none", [], "").view(*x.shape[:-1], -1)

    def _fit(self, like: torch.Tensor, end: int) -> None:
        """Make the cache hold at least ``end`` slots, growing it by ``GROW`` at a time: attention
        reads every allocated slot, so allocating max_len at once would read empty ones for most
        of the response (a copy now and then is cheaper)."""
        size = 0 if self.cache is None else self.cache[0][0].shape[2]
        if end <= size:
            return
        new = min(self.max_len, end + GROW)
        shape = (self.batch, self.Hkv, new, self.D)
        fresh = [(like.new_zeros(shape), like.new_zeros(shape)) for _ in self.body.layers]
        for (k, v), (k_old, v_old) in zip(fresh, self.cache or []):
            k[:, :, :size] = k_old
            v[:, :, :size] = v_old
        self.cache = fresh

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, start: int, bias: torch.Tensor) -> torch.Tensor:
        """Logits of the last position. ids, pos: [B, S] tokens at cache slots start..start+S-1 and
        their rotary positions; bias: [B, 1, S, max_len], masking padding and unfilled slots.
        Returns [B, V] float32."""
        B, S = ids.shape
        end = start + S
        h = self.body.embed_tokens(ids)
        cos = self.cos[pos].unsqueeze(1)
        sin = self.sin[pos].unsqueeze(1)
        for i, layer in enumerate(self.body.layers):
            a = layer.self_attn
            x = layer.input_layernorm(h)
            q = self._linear(a.q_proj, x).view(B, S, self.H, self.D).transpose(1, 2)
            k = self._linear(a.k_proj, x).view(B, S, self.Hkv, self.D).transpose(1, 2)
            v = self._linear(a.v_proj, x).view(B, S, self.Hkv, self.D).transpose(1, 2)
            q, k = _rotate(q, cos.to(q.dtype), sin.to(q.dtype)), _rotate(k, cos.to(k.dtype), sin.to(k.dtype))
            if i == 0:
                self._fit(k, end)
            kc, vc = self.cache[i]
            kc[:, :, start:end] = k
            vc[:, :, start:end] = v
            # The whole cache, its unfilled slots masked by ``bias``: a slice would be strided
            # in the batch dimensions, and matmul would copy it every step.
            o = _attend(q, kc, vc, bias[..., : kc.shape[2]], self.scale)
            h = h + self._linear(a.o_proj, o.transpose(1, 2).reshape(B, S, self.H * self.D))
            x, mlp = layer.post_attention_layernorm(h), layer.mlp  # the Llama / Qwen2 MLP, spelled out
            h = h + self._linear(mlp.down_proj, mlp.act_fn(self._linear(mlp.gate_proj, x)) * self._linear(mlp.up_proj, x))
        return self._linear(self.head, self.body.norm(h[:, -1:]))[:, -1].float()


def _choose(logits: torch.Tensor, temperature: float, top_p: float, greedy: bool):
    """Next token of each row, its log-prob and the distribution's entropy (both at ``temperature``,
    before nucleus truncation, as the loss's log-probs are). logits: [B, V] -> three [B] tensors."""
    logp_all = F.log_softmax(logits / temperature, dim=-1)
    probs = logp_all.exp()
    if greedy:
        tok = logits.argmax(dim=-1)
    else:
        keep = probs
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = (sorted_p.cumsum(dim=-1) - sorted_p) > top_p  # the top token always stays
            keep = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
        # Inverse-CDF sampling: one uniform per row. torch.multinomial draws an exponential per
        # vocabulary entry (7 ms per step for SmolLM2's 49k tokens on this CPU).
        cdf = keep.cumsum(dim=-1)
        u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]
        tok = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=cdf.shape[1] - 1)
    entropy = -(probs * logp_all).sum(-1)
    return tok, logp_all.gather(-1, tok[:, None]).squeeze(1), entropy


@torch.no_grad()
def sample_tokens(
    model, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, eos: list[int], pad_id: int,
    temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False, pack: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample continuations of left-padded prompts, stopping when every row has emitted a stop id.

    Args:
        ids, mask: [B, P] prompt tokens and attention mask (left padding).
        eos: the ids that end a response.
        pack: use oneDNN-packed weights in the decode steps where they apply (CPU, bf16).

    Returns:
        response: [B, T] tokens (T <= max_new_tokens: the longest response), pad after the stop id;
        response_mask: [B, T] 1 up to and including the stop id;
        logp: [B, T] log-prob of each sampled token at ``temperature`` under the sampling weights;
        entropy: [B, T] entropy of each step's distribution at ``temperature``.
    Sampling draws from torch's global RNG (one uniform per row per step).
    """
    B, P = ids.shape
    dec = _Decoder(model, B, P + max_new_tokens, pack)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    keys = torch.cat([mask, mask.new_ones(B, max_new_tokens)], dim=1).bool()  # [B, L]
    L = P + max_new_tokens
    causal = torch.ones(P, L, dtype=torch.bool, device=ids.device).tril()
    allowed = causal[None] & keys[:, None, :]
    logits = dec(ids, pos, 0, torch.zeros(B, 1, P, L, device=ids.device).masked_fill(~allowed[:, None], _MASKED))
    last = pos[:, -1:]
    # Response slots open one per step, as they are written.
    keys[:, P:] = False
    key_bias = torch.zeros(B, 1, 1, L, device=ids.device).masked_fill(~keys[:, None, None], _MASKED)
    eos_t = torch.tensor(eos, device=ids.device, dtype=torch.long)
    tokens, logps, ents = [], [], []
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    for t in range(max_new_tokens):
        tok, lp, ent = _choose(logits, temperature, top_p, greedy)
        tok = tok.masked_fill(done, pad_id)
        tokens.append(tok)
        logps.append(lp.masked_fill(done, 0.0))
        ents.append(ent.masked_fill(done, 0.0))
        done = done | torch.isin(tok, eos_t)
        if t == max_new_tokens - 1 or bool(done.all()):
            break
        last = last + 1
        key_bias[..., P + t] = 0.0
        logits = dec(tok[:, None], last, P + t, key_bias)
    response = torch.stack(tokens, dim=1)
    is_eos = torch.isin(response, eos_t)
    after = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    response_mask = (~after).long()
    response = response.masked_fill(after, pad_id)
    mask_f = response_mask.float()
    return response, response_mask, torch.stack(logps, 1) * mask_f, torch.stack(ents, 1) * mask_f

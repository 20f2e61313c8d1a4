"""Chat replies from a transformers model loaded in this process, generated in batches.

For a judge on the same machine as the trainer, with no server in between. The model is loaded
on first use, so building the judge from config stays cheap.
"""

from __future__ import annotations

from sgpo.judges.base import ERROR
from sgpo.judges.llm import Reply
from sgpo.judges.stats import JudgeStats


class TransformersChatBackend:
    """Batched ``generate`` over chat-templated conversations.

    Args:
        model: a local model directory, or the name of a packaged model (``smollm2``), which is
            prepared in the cache on first use. Ignored when ``lm`` and ``tokenizer`` are given.
        device, dtype: where and in which precision to load (``auto`` keeps the saved dtype).
        batch_size: conversations per ``generate`` call.
        temperature: 0 for greedy decoding, else sampling at this temperature.
        max_new_tokens: reply length limit.
        max_time_s: wall-time limit of one ``generate`` call (cut replies then parse as invalid).
        threads: torch CPU threads, set process-wide on load (None: leave torch's default).
        lm, tokenizer: an already loaded model and tokenizer (tests, or sharing the policy).
    """

    def __init__(self, model: str = "smollm2", device: str = "cpu", dtype: str = "auto", batch_size: int = 8,
                 temperature: float = 0.0, top_p: float | None = None, max_new_tokens: int = 512,
                 max_time_s: float | None = None, threads: int | None = None, lm=None, tokenizer=None):
        self.model_name, self.device, self.dtype = model, device, dtype
        self.batch_size, self.temperature, self.top_p = batch_size, temperature, top_p
        self.max_new_tokens, self.max_time_s = max_new_tokens, max_time_s
        self.lm, self.tokenizer, self.threads = lm, tokenizer, threads
        self.stats = JudgeStats()

    def load(self) -> None:
        """Load the model now (otherwise on the first batch)."""
        if self.lm is not None and self.tokenizer is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sgpo.models.packaged import resolve_model_dir

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        path = resolve_model_dir(self.model_name)
        dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()

    def complete(self, conversations: list[list[dict]], samples: int) -> list[list[Reply]]:
        try:
            self.load()
        except Exception as e:  # noqa: BLE001 - a missing model fails the batch, not the run
            return [[Reply(None, ERROR, f"cannot load judge model {self.model_name!r}: {type(e).__name__}: {e}")] for _ in conversations]
        out: list[list[Reply]] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = conversations[start : start + self.batch_size]
            try:
                out.extend(self._generate(chunk, samples))
            except Exception as e:  # noqa: BLE001 - e.g. out of memory: this chunk fails, the next may not
                out.extend([Reply(None, ERROR, f"{type(e).__name__}: {e}")] for _ in chunk)
        return out

    def _generate(self, chunk: list[list[dict]], samples: int) -> list[list[Reply]]:
        import torch

        tok = self.tokenizer
        texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chunk]
        # Left padding: every prompt ends at the same position, where generation starts.
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.lm.device)
        sample = self.temperature > 0
        # Greedy decoding gives the same reply every time: generate once, repeat it.
        n_return = samples if sample else 1
        kwargs = {"do_sample": sample, "max_new_tokens": self.max_new_tokens, "num_return_sequences": n_return,
                  "pad_token_id": tok.pad_token_id}
        if sample:
            kwargs["temperature"] = self.temperature
            if self.top_p is not None:
                kwargs["top_p"] = self.top_p
        else:  # silence "temperature is set but do_sample=False" from the model's generation config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.max_time_s is not None:
            kwargs["max_time"] = self.max_time_s
        with torch.no_grad():
            generated = self.lm.generate(**enc, **kwargs)
        self.stats.calls += 1
        new = tok.batch_decode(generated[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        replies = [Reply(t) for t in new]
        return [(replies[i * n_return : (i + 1) * n_return] * samples)[:samples] for i in range(len(chunk))]

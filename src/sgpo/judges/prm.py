"""PRMJudge: a process reward model scores every step in one forward pass.

The first step whose score falls below ``threshold`` is the first error; -1 if none does.
Formats (how a solution is laid out and where its step scores are read):

- ``qwen`` (Qwen2.5-Math-PRM): chat template (system, problem, steps joined by ``<extra_0>`` and
  ending with one); a token-classification head; the score of a step is the class-1 probability
  at the separator that ends it.
- ``shepherd`` (Math-Shepherd): ``problem`` then ``Step i: ... ки`` lines; a causal LM; the score
  is P("+") / (P("+") + P("-")) predicted at each ``ки`` tag.
- ``sgpo`` (``sgpo train-judge``): ``problem``, optionally the reference, then each step followed
  by ``<step>``; a token-classification head read at each ``<step>``, like ``qwen``. The model
  directory holds ``sgpo_judge.json`` with the separator, whether the reference is shown, and the
  threshold tuned on held-out data.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sgpo.judges.base import ERROR, INVALID, JudgeRequest, Verdict
from sgpo.judges.stats import JudgeStats
from sgpo.models.packaged import check_model_dir

#: Written by ``sgpo train-judge`` next to the model; marks the ``sgpo`` format.
JUDGE_META = "sgpo_judge.json"
FORMATS = ("qwen", "shepherd", "sgpo")
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_SEPARATOR = {"qwen": "<extra_0>", "shepherd": "ки", "sgpo": "<step>"}
#: How the ``sgpo`` format lays a solution out: ``plain`` (problem, reference, steps); ``numbered``
#: ("(i) " before step i and reference line i: a small model finds the line to compare with by
#: content); ``aligned`` (reference line i, padded to ALIGN_WIDTH characters, then "|" and step i,
#: before each separator: a right step is a copy at a fixed distance, which a tiny model checks
#: easily; for tasks whose right solutions follow the reference step by step, like the arithmetic task).
LAYOUTS = ("plain", "numbered", "aligned")
ALIGN_WIDTH = 24


@dataclass(frozen=True)
class Encoded:
    """One request as token ids, with the positions whose output scores each step."""

    ids: list[int]
    positions: list[int]
    n_steps: int


class PRMJudge:
    """Score all steps of each response with one forward pass of a PRM.

    Args:
        model: a token-classification model (``qwen``, ``sgpo``: ``[B, T, 2]`` logits) or a causal
            LM (``shepherd``: ``[B, T, vocab]``); anything whose output has ``.logits``.
        tokenizer: its tokenizer (a ``transformers`` tokenizer).
        format: ``qwen``, ``shepherd`` or ``sgpo``.
        threshold: a step scoring below this is an error.
        separator: the step separator / tag (default per format).
        use_reference: show the reference solution (``sgpo`` format only).
        system: the system message of the ``qwen`` chat template.
    """

    def __init__(self, model, tokenizer, format: str, threshold: float = 0.5, batch_size: int = 16, max_length: int = 4096,
                 separator: str | None = None, use_reference: bool = False, system: str | None = QWEN_SYSTEM,
                 layout: str = "plain"):
        if format not in FORMATS:
            raise ValueError(f"unknown PRM format {format!r}; choose one of: {', '.join(FORMATS)}")
        self.model, self.tokenizer, self.format = model, tokenizer, format
        self.threshold, self.batch_size, self.max_length = threshold, batch_size, max_length
        self.separator = separator or DEFAULT_SEPARATOR[format]
        self.use_reference, self.system = use_reference, system
        if layout not in LAYOUTS:
            raise ValueError(f"unknown sgpo layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
        self.layout = layout
        self.stats = JudgeStats()
        self._sep_id = self._single_id(self.separator)
        if format == "shepherd":
            self._good, self._bad = self._single_id("+"), self._single_id("-")

    # --- loading --------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, format: str = "auto", threshold: float | None = None, device: str = "cpu",
                        dtype: str = "auto", trust_remote_code: bool = False, **kwargs) -> "PRMJudge":
        """Load a PRM from a local directory; ``format=auto`` reads ``sgpo_judge.json`` or the config."""
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

        path = check_model_dir(path, "judge.prm.model")
        meta = json.loads((path / JUDGE_META).read_text()) if (path / JUDGE_META).is_file() else {}
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        archs = " ".join(config.architectures or [])
        if format == "auto":
            format = meta.get("format") or ("shepherd" if "CausalLM" in archs else "qwen")
        if format == "sgpo":
            kwargs.setdefault("separator", meta.get("separator"))
            kwargs.setdefault("use_reference", meta.get("use_reference", False))
            kwargs.setdefault("layout", meta.get("layout", "plain"))
        threshold = threshold if threshold is not None else meta.get("threshold", 0.5)
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        if format == "shepherd":
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        elif "ProcessRewardModel" in archs:  # Qwen2.5-Math-PRM ships its own model class
            if not trust_remote_code:
                raise ValueError(f"{path} needs its own model code ({archs}); set judge.prm.trust_remote_code=true")
            model = AutoModel.from_pretrained(path, dtype=torch_dtype, trust_remote_code=True)
        else:
            model = AutoModelForTokenClassification.from_pretrained(path, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        return cls(model.to(device).eval(), tokenizer, format, threshold, **kwargs)

    # --- encoding -------------------------------------------------------------------------

    def _single_id(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise ValueError(f"the tokenizer turns {text!r} into no tokens")
        # "ки" after a space or "+" alone may be one token or end a merge; the last id is what
        # the model sees at that position.
        return ids[-1]

    def text(self, request: JudgeRequest) -> str:
        """The model input for one request, in this judge's format."""
        sep = self.separator
        if self.format == "qwen":
            messages = [{"role": "user", "content": request.problem},
                        {"role": "assistant", "content": sep.join(request.steps) + sep}]
            if self.system:
                messages.insert(0, {"role": "system", "content": self.system})
            if getattr(self.tokenizer, "chat_template", None):
                return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
            return request.problem + "\n" + sep.join(request.steps) + sep
        if self.format == "shepherd":
            lines = [s if s.lower().startswith("step") else f"Step {i + 1}: {s}" for i, s in enumerate(request.steps)]
            return request.problem + " " + "\n".join(f"{line} {sep}" for line in lines)
        lines = request.reference.split("\n") if self.use_reference and request.reference else []
        if self.layout == "numbered":
            reference = "".join(f"({i}) {line}\n" for i, line in enumerate(lines))
            reference = f"Reference:\n{reference}" if lines else ""
            return f"{request.problem}\n{reference}Solution:\n" + "".join(f"({i}) {s}{sep}" for i, s in enumerate(request.steps))
        if self.layout == "aligned":
            ref = lambda i: lines[i] if i < len(lines) else ""  # noqa: E731
            return f"{request.problem}\nSolution:\n" + "".join(
                f"{ref(i):<{ALIGN_WIDTH}}|{s}{sep}" for i, s in enumerate(request.steps))
        reference = f"Reference:\n{request.reference}\n" if self.use_reference and request.reference else ""
        return f"{request.problem}\n{reference}Solution:\n" + "".join(f"{s}{sep}" for s in request.steps)

    def encode(self, request: JudgeRequest) -> Encoded | str:
        """Token ids and score positions, or why the request cannot be scored."""
        if not request.steps:
            return "response has no steps"
        if any(self.separator in s for s in request.steps):
            return f"a step contains the separator {self.separator!r}"
        ids = self.tokenizer(self.text(request), add_special_tokens=self.format != "qwen")["input_ids"]
        positions = [i for i, t in enumerate(ids) if t == self._sep_id]
        # The problem itself could contain the separator: the step separators are the last K.
        if len(positions) < len(request.steps):
            return f"found {len(positions)} step separators for {len(request.steps)} steps"
        positions = positions[-len(request.steps):]
        if len(ids) > self.max_length:
            ids = ids[: self.max_length]
            positions = [p for p in positions if p < self.max_length]
        return Encoded(ids, positions, len(request.steps))

    # --- scoring --------------------------------------------------------------------------

    def _scores(self, batch: list[Encoded]) -> list[list[float]]:
        """Per-step scores in [0, 1] for a batch, one forward pass, right padding."""
        import torch

        width = max(len(e.ids) for e in batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        with torch.no_grad():
            out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device))
        logits = (out.logits if hasattr(out, "logits") else out[0]).float()
        self.stats.calls += 1
        if self.format == "shepherd":
            probs = torch.softmax(logits[..., [self._good, self._bad]], dim=-1)[..., 0]
        else:
            probs = torch.softmax(logits, dim=-1)[..., 1]
        return [probs[row, e.positions].tolist() for row, e in enumerate(batch)]

    def step_scores(self, requests: list[JudgeRequest]) -> list[list[float] | str]:
        """Each request's step scores (possibly fewer than its steps, if cut), or why none."""
        encoded = [self.encode(r) for r in requests]
        out: list[list[float] | str] = list(encoded)
        todo = [i for i, e in enumerate(encoded) if isinstance(e, Encoded)]
        # Similar lengths together: less padding per forward pass.
        todo.sort(key=lambda i: len(encoded[i].ids))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            try:
                scores = self._scores([encoded[i] for i in chunk])
            except Exception as e:  # noqa: BLE001 - e.g. out of memory: this chunk fails, not the run
                scores = [f"error: {type(e).__name__}: {e}"] * len(chunk)
            for i, s in zip(chunk, scores):
                out[i] = s
        return out

    def verdict(self, scores: list[float] | str, n_steps: int) -> Verdict:
        """The first step below the threshold, from a request's scores."""
        if isinstance(scores, str):
            return Verdict.failed(n_steps, ERROR if scores.startswith("error:") else INVALID, raw=scores)
        raw = "scores " + " ".join(f"{s:.3f}" for s in scores)
        first = next((k for k, s in enumerate(scores) if s < self.threshold), None)
        if first is not None:
            return Verdict(first, n_steps, raw=raw)
        if len(scores) < n_steps:  # the cut steps could hold the error: do not claim there is none
            return Verdict.failed(n_steps, INVALID, raw=f"input longer than max_length: {len(scores)} of {n_steps} steps scored; {raw}")
        return Verdict(-1, n_steps, raw=raw)

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        start = time.perf_counter()
        verdicts = [self.verdict(s, len(r.steps)) for s, r in zip(self.step_scores(requests), requests)]
        self.stats.record(verdicts, time.perf_counter() - start)
        return verdicts


class LazyPRMJudge:
    """A PRMJudge loaded on first use by ``load_model`` (so building a judge from config stays
    cheap); a model that fails to load turns every verdict into an ``error`` (the run goes on) and
    is tried again on the next batch."""

    def __init__(self, load_model: Callable[[], PRMJudge], name: str):
        self.load_model, self.name, self.inner = load_model, name, None
        self.stats = JudgeStats()

    def load(self) -> PRMJudge:
        if self.inner is None:
            self.inner = self.load_model()
            self.inner.stats = self.stats  # one set of counters, whoever asks
        return self.inner

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        try:
            judge = self.load()
        except Exception as e:  # noqa: BLE001
            verdicts = [Verdict.failed(len(r.steps), ERROR, raw=f"cannot load PRM {self.name!r}: {type(e).__name__}: {e}")
                        for r in requests]
            self.stats.record(verdicts, 0.0)
            return verdicts
        return judge.judge(requests)

"""PRMJudge in its three formats, on models built in code.

A stub PRM whose score at each position depends only on the token before it ("good" -> right,
"bad" -> wrong, "meh" -> 50/50) makes the expected verdicts exact, so the tests check layout,
separator positions, padding, thresholds and truncation. Tiny random Hugging Face models check
that real model classes load and run through the same path.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForTokenClassification, PreTrainedTokenizerFast

from sgpo.judges import JudgeRequest
from sgpo.judges.config import JudgeConfig, build_judge
from sgpo.judges.prm import JUDGE_META, PRMJudge
from sgpo.judges.stats import collect_stats

WORDS = ["<pad>", "<unk>", "good", "bad", "meh", "ки", "+", "-", "Step", ":", "p", *"0123456789"]
SPECIAL = ["<extra_0>", "<step>"]
CHAT = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"


def word_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": SPECIAL})
    if chat:
        fast.chat_template = CHAT
    return fast


class PrevTokenPRM(torch.nn.Module):
    """Logits at each position from the previous token only: [B, T, 2] or, as a causal LM
    (Math-Shepherd style), [B, T, vocab] with the score on "+" against "-"."""

    def __init__(self, tok: PreTrainedTokenizerFast, causal: bool = False):
        super().__init__()
        self.ids = {w: tok.convert_tokens_to_ids(w) for w in ("good", "bad", "+", "-")}
        self.vocab, self.causal = len(tok), causal
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so the judge can find the device
        self.calls = 0

    def forward(self, input_ids, attention_mask=None):
        self.calls += 1
        prev = torch.roll(input_ids, 1, dims=1)
        score = torch.where(prev == self.ids["good"], 4.0, torch.where(prev == self.ids["bad"], -4.0, 0.0))
        if not self.causal:
            return SimpleNamespace(logits=torch.stack([torch.zeros_like(score), score], dim=-1))
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., self.ids["+"]] = score
        return SimpleNamespace(logits=logits)


def judge_for(fmt: str, **kw) -> PRMJudge:
    tok = word_tokenizer()
    return PRMJudge(PrevTokenPRM(tok, causal=fmt == "shepherd"), tok, fmt, **kw)


CASES = [
    (["good", "good", "bad", "good"], 2),
    (["good", "good", "good"], -1),
    (["bad"], 0),
    (["good", "meh", "bad"], 2),  # "meh" scores exactly 0.5: not below the threshold
]


@pytest.mark.parametrize("fmt", ["qwen", "shepherd", "sgpo"])
def test_first_step_below_threshold_in_every_format(fmt):
    judge = judge_for(fmt, batch_size=2)
    requests = [JudgeRequest("p 1", steps) for steps, _ in CASES]
    verdicts = judge.judge(requests)
    assert [(v.first_error, v.n_steps, v.status) for v in verdicts] == [(k, len(s), "ok") for s, k in CASES]
    assert judge.model.calls == 2  # four requests, batches of two: one forward pass each
    one_by_one = [judge.judge([r])[0].first_error for r in requests]
    assert one_by_one == [k for _, k in CASES]  # padding changes nothing
    scores = judge.step_scores([JudgeRequest("p", ["good", "meh", "bad"])])[0]
    assert scores == pytest.approx([torch.sigmoid(torch.tensor(4.0)).item(), 0.5, torch.sigmoid(torch.tensor(-4.0)).item()])


def test_layouts():
    r = JudgeRequest("p", ["good", "bad"], reference="good good")
    assert judge_for("qwen").text(r) == (
        "<|system|>\nPlease reason step by step, and put your final answer within \\boxed{}.\n"
        "<|user|>\np\n<|assistant|>\ngood<extra_0>bad<extra_0>\n")
    assert judge_for("shepherd").text(r) == "p Step 1: good ки\nStep 2: bad ки"
    assert judge_for("sgpo").text(r) == "p\nSolution:\ngood<step>bad<step>"
    assert judge_for("sgpo", use_reference=True).text(r) == "p\nReference:\ngood good\nSolution:\ngood<step>bad<step>"


def test_threshold_truncation_and_unscorable_requests():
    assert judge_for("qwen", threshold=0.6).judge([JudgeRequest("p", ["good", "meh"])])[0].first_error == 1
    short = judge_for("sgpo", max_length=8)  # "p \n Solution : \n" is 4 tokens; each step 2 more
    early, late = short.judge([JudgeRequest("p", ["bad"] + ["good"] * 5), JudgeRequest("p", ["good"] * 5 + ["bad"])])
    assert early.ok and early.first_error == 0
    assert late.status == "invalid" and "2 of 6 steps scored" in late.raw
    judge = judge_for("qwen")
    empty, clash, in_problem = judge.judge([
        JudgeRequest("p", []), JudgeRequest("p", ["good<extra_0>bad"]), JudgeRequest("p <extra_0> p", ["good", "bad"])])
    assert empty.status == clash.status == "invalid" and "separator" in clash.raw
    assert in_problem.ok and in_problem.first_error == 1  # the last K separators are the steps'
    stats = judge.stats.as_dict()
    assert stats["verdicts"] == 3 and stats["failures/invalid"] == 2 and stats["calls"] == 1


def save_tiny(path, causal: bool, meta: dict | None = None):
    tok = word_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id, num_labels=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config) if causal else LlamaForTokenClassification(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    if meta:
        (path / JUDGE_META).write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize("kind, causal, meta, fmt", [
    ("token-classification", False, None, "qwen"),
    ("causal-lm", True, None, "shepherd"),
    ("trained", False, {"format": "sgpo", "separator": "<step>", "use_reference": True, "threshold": 0.25}, "sgpo"),
])
def test_real_tiny_models_load_from_config(tmp_path, kind, causal, meta, fmt):
    path = save_tiny(tmp_path / kind, causal, meta)
    judge = build_judge(JudgeConfig(kind="prm", prm={"model": str(path), "batch_size": 4}))
    requests = [JudgeRequest("p", ["good", "bad", "good"], reference="good"), JudgeRequest("p", ["bad"])]
    verdicts = judge.judge(requests)
    assert [v.n_steps for v in verdicts] == [3, 1] and all(v.ok for v in verdicts)
    assert all(len(v.raw.split()) == 1 + v.n_steps for v in verdicts)  # "scores" + one per step
    inner = judge.inner.inner
    assert inner.format == fmt and (inner.threshold == 0.25) == (kind == "trained")
    assert collect_stats(judge)["judge/calls"] == 1


@pytest.mark.parametrize("make, words", [
    (lambda d: d, "no such directory"),
    (lambda d: (d.mkdir(), d)[1], "no config.json"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{broken"), d)[2], "config.json:1: not a model config"),
    (lambda d: (d.write_text("x"), d)[1], "is a file, not a model directory"),
])
def test_a_prm_path_that_is_not_a_model_is_refused_when_the_judge_is_built(tmp_path, make, words):
    from sgpo.errors import ConfigError, DataError

    path = make(tmp_path / "judge")
    with pytest.raises((ConfigError, DataError), match=words) as e:
        build_judge(JudgeConfig(kind="prm", prm={"model": str(path)}))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_checkpoint_without_weights_is_refused_when_the_judge_is_built(tmp_path):
    from sgpo.errors import DataError

    path = save_tiny(tmp_path / "judge", causal=False)
    (path / "model.safetensors").unlink()
    with pytest.raises(DataError, match=r"judge\.prm\.model=.*has no weights"):
        build_judge(JudgeConfig(kind="prm", prm={"model": str(path)}))


def test_a_model_that_fails_to_load_fails_verdicts_not_the_caller(tmp_path):
    path = save_tiny(tmp_path / "judge", causal=False)
    (path / "model.safetensors").write_bytes(b"not safetensors")  # looks complete; breaks on load
    judge = build_judge(JudgeConfig(kind="prm", prm={"model": str(path)}))
    v, = judge.judge([JudgeRequest("p", ["a", "b"])])
    assert v.status == "error" and "cannot load PRM" in v.raw



"""RL runs without dropout by default, so an on-policy importance ratio starts at exactly 1."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from testkit import tiny_overrides  # noqa: E402

from sgpo.sampling.rollout import generate, token_logprobs  # noqa: E402
from sgpo.train.compare import default_config_path  # noqa: E402
from sgpo.train.config import load_config  # noqa: E402
from sgpo.train.sft import initial_policy, warmup_key  # noqa: E402


def logprobs_train_vs_eval(tmp_path, *extra):
    cfg = load_config(default_config_path(), tiny_overrides(tmp_path, "model.lora_r=4", "model.lora_dropout=0.5", *extra))
    torch.manual_seed(0)
    policy, tok = initial_policy(cfg, torch.device("cpu"), log=lambda *a: None)
    # LoRA's B starts at 0, which would hide dropout on the adapters: give them weight.
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    policy.eval()
    rollout = generate(policy, tok, ["Start with 3. Add 4."], n=2, max_new_tokens=8)
    with torch.no_grad():
        eval_logp, _ = token_logprobs(policy, rollout, 1.0)
        policy.train()
        train_logp, _ = token_logprobs(policy, rollout, 1.0)
    return eval_logp, train_logp, cfg


def test_dropout_is_off_by_default(tmp_path):
    eval_logp, train_logp, _ = logprobs_train_vs_eval(tmp_path)
    assert torch.equal(eval_logp, train_logp)


def test_keeping_dropout_changes_train_mode_logprobs(tmp_path):
    eval_logp, train_logp, cfg = logprobs_train_vs_eval(tmp_path, "model.disable_dropout=false")
    assert not torch.allclose(eval_logp, train_logp)
    # The warm-up does not depend on it: both settings share one cached warm-up.
    other = cfg.model_copy(update={"model": cfg.model.model_copy(update={"disable_dropout": True})})
    assert warmup_key(cfg) == warmup_key(other)

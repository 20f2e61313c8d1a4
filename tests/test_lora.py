"""LoRA policies (model.lora_r > 0): only adapters train, checkpoints hold adapters, resume is exact."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from testkit import comparable, tiny_overrides

from sgpo.models.policies import LORA_WEIGHTS, is_lora, load_policy
from sgpo.train.config import load_config
from sgpo.train.metrics import read_jsonl
from sgpo.train.trainer import Trainer

#: random RTS gives every all-negative group a signal, so each step moves the adapters.
LORA = ["model.lora_r=4", "model.lora_alpha=8", "algorithm.method=random", "algorithm.scope=all_incorrect"]


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_only_adapters_train(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, *LORA))
    trainer = Trainer(cfg, tmp_path / "run", log=lambda *a: None)
    policy = trainer.policy
    assert is_lora(policy)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(trainable)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    for _ in range(2):
        trainer.step()
    after = policy.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("lora_B" in k for k in changed) and any("lora_A" in k for k in changed)
    assert all("lora_" in k for k in changed), sorted(k for k in changed if "lora_" not in k)


def test_adapters_start_as_the_identity_and_the_reference_is_the_base(tmp_path):
    plain = Trainer(load_config(None, tiny_overrides(tmp_path)), tmp_path / "a", log=lambda *a: None)
    lora = Trainer(load_config(None, tiny_overrides(tmp_path, *LORA, "algorithm.beta_kl=0.1")), tmp_path / "b", log=lambda *a: None)
    ids = torch.tensor([[4, 20, 5, 30, 31, 32]])
    assert torch.equal(_logits(lora.policy, ids), _logits(plain.policy, ids))
    assert lora.ref is not None and not is_lora(lora.ref) and not any(p.requires_grad for p in lora.ref.parameters())
    assert torch.equal(_logits(lora.ref, ids), _logits(plain.policy, ids))


def test_lora_run_resumes_exactly_and_checkpoints_hold_adapters(tmp_path):
    common = tiny_overrides(tmp_path, *LORA, "train.steps=4", "train.save_every=2", "train.eval_every=2")
    full = tmp_path / "full"
    Trainer(load_config(None, common), full, log=lambda *a: None).train()
    # A run stopped after its step-2 checkpoint, then resumed from it with its saved config.
    cut = tmp_path / "cut"
    first = Trainer(load_config(None, common), cut, log=lambda *a: None)
    first.cfg.train.steps = 2
    first.train()
    assert not (cut / "checkpoints" / "step_4").exists()
    Trainer.resume_from(cut, log=lambda *a: None).train()
    assert comparable(read_jsonl(cut / "metrics.jsonl")) == comparable(read_jsonl(full / "metrics.jsonl"))
    ckpt = full / "checkpoints" / "step_4"
    a, b = load_file(ckpt / LORA_WEIGHTS), load_file(cut / "checkpoints" / "step_4" / LORA_WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    assert not (ckpt / "model.safetensors").exists()  # adapters only; the base is rebuilt from the config


def test_a_lora_checkpoint_loads_as_a_merged_model(tmp_path):
    trainer = Trainer(load_config(None, tiny_overrides(tmp_path, *LORA)), tmp_path / "run", log=lambda *a: None)
    trainer.step()
    trainer.step()
    ckpt = trainer.save()
    merged, tokenizer = load_policy(ckpt)
    assert not is_lora(merged) and tokenizer.pad_token_id is not None
    ids = torch.tensor([[4, 20, 5, 30, 31, 32]])
    torch.testing.assert_close(_logits(merged, ids), _logits(trainer.policy.eval(), ids), rtol=1e-5, atol=1e-5)

"""A non-finite loss or gradient never reaches the weights (issue 18 §2): the step is skipped and
counted in ``train/skipped_steps``; after ``train.max_skipped_steps`` in a row the run stops with
one line naming the step, exit 1, and the last good checkpoint as it was."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
from testkit import tiny_overrides

import sgpo.train.trainer as trainer_module
import sgpo.train.update as update_module
from sgpo.cli import main
from sgpo.errors import RunFailed, TrainingDiverged
from sgpo.train.checkpoint import load_trainer_state
from sgpo.train.guard import UpdateGuard
from sgpo.train.metrics import read_jsonl
from sgpo.train.runtime import optimizer_step
from sgpo.train.trainer import Trainer


class NaNGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def poison(monkeypatch, steps: set[int], kind: str) -> None:
    """In RL steps ``steps`` (1-based) make the advantages NaN, so the loss is (``kind="loss"``),
    or give every response advantage 1 and the loss a NaN gradient (``kind="grad"``); every other
    step trains as usual."""
    now = {"step": 0}
    real_update, real_loss = update_module.update_policy, update_module.policy_loss

    def update(policy, optimizer, scheduler, rollout, advantages, *args, step, **kwargs):
        now["step"] = step + 1
        if now["step"] in steps:  # every row active, so the poisoned loss is taken
            advantages = advantages * float("nan") if kind == "loss" else torch.ones_like(advantages)
        return real_update(policy, optimizer, scheduler, rollout, advantages, *args, step=step, **kwargs)

    def loss(*args, **kwargs):
        out = real_loss(*args, **kwargs)
        if now["step"] in steps and kind == "grad":
            return out._replace(loss=NaNGradient.apply(out.loss))
        return out

    monkeypatch.setattr(trainer_module, "update_policy", update)
    monkeypatch.setattr(update_module, "policy_loss", loss)


def files(ckpt) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(ckpt.iterdir()) if p.is_file()}


def weights_file(ckpt):
    return next(p for p in ckpt.iterdir() if p.suffix in (".safetensors", ".bin"))


def test_a_run_whose_loss_stays_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    poison(monkeypatch, steps=set(range(3, 100)), kind="loss")
    before = {}
    real_save = Trainer.save

    def save(self):  # what each checkpoint held when it was written
        ckpt = real_save(self)
        before[ckpt.name] = files(ckpt)
        return ckpt

    monkeypatch.setattr(Trainer, "save", save)
    code = main(["train", *tiny_overrides(tmp_path, "train.steps=8", "train.save_every=1", "train.eval_every=0",
                                          "train.max_skipped_steps=3", f"train.out_dir={run}")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    # Above it only transformers' progress bars of the checkpoint saves; the error is the last line.
    assert "Traceback" not in "\n".join(err) and sum("error" in line for line in err) == 1, err
    assert err[-1].startswith("sgpo train: error: RL stopped at step 5: non-finite loss or gradient in 3 steps in a row (3..5)")
    assert "those after step 2" in err[-1]

    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_1", "step_2", "step_3", "step_4"]
    for name, hashes in before.items():  # nothing rewrote a checkpoint
        assert files(ckpts / name) == hashes, name
    # The skipped steps 3 and 4 were checkpointed with the weights of step 2, byte for byte.
    good = weights_file(ckpts / "step_2").read_bytes()
    assert weights_file(ckpts / "step_3").read_bytes() == good and weights_file(ckpts / "step_4").read_bytes() == good
    for name in ("step_3", "step_4"):
        a, b = load_trainer_state(ckpts / "step_2"), load_trainer_state(ckpts / name)
        assert a["scheduler"] == b["scheduler"]
        for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(weights_file(ckpts / "step_4")).values())

    rows = [m for m in read_jsonl(run / "metrics.jsonl") if m["step"] > 0]
    assert [m["step"] for m in rows] == [1, 2, 3, 4, 5]
    assert [m["train/skipped_steps"] for m in rows] == [0, 0, 1, 2, 3]
    assert all(math.isfinite(m["loss"]) for m in rows[:2]) and all(math.isnan(m["loss"]) for m in rows[2:])


def test_a_nan_gradient_is_skipped_and_training_goes_on(tmp_path, monkeypatch):
    run = tmp_path / "run"
    poison(monkeypatch, steps={3}, kind="grad")
    code = main(["train", *tiny_overrides(tmp_path, "train.steps=4", "train.save_every=1", "train.eval_every=0",
                                          f"train.out_dir={run}")])
    assert code == 0
    rows = [m for m in read_jsonl(run / "metrics.jsonl") if m["step"] > 0]
    assert [m["train/skipped_steps"] for m in rows] == [0, 0, 1, 1]
    assert math.isfinite(rows[2]["loss"]) and math.isnan(rows[2]["grad_norm"])
    ckpts = run / "checkpoints"
    assert weights_file(ckpts / "step_3").read_bytes() == weights_file(ckpts / "step_2").read_bytes()
    assert weights_file(ckpts / "step_4").read_bytes() != weights_file(ckpts / "step_3").read_bytes()
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(weights_file(ckpts / "step_4")).values())
    # The count survives a resume: it is part of the trainer state.
    assert load_trainer_state(ckpts / "step_4")["guard"] == {"skipped_total": 1, "in_row": 0}


@pytest.mark.parametrize("bad", ["loss", "grad"])
def test_the_shared_optimizer_step_of_warm_up_and_judge_training_skips_and_stops(bad):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    guard = UpdateGuard(max_in_row=3, what="warm-up")
    x = torch.ones(2, 3)

    def loss():
        out = model(x).sum()
        return out * float("nan") if bad == "loss" else NaNGradient.apply(out)

    optimizer_step(model, opt, sched, model(x).sum(), guard=guard, step=1)  # a good step
    kept = [p.detach().clone() for p in model.parameters()]
    optimizer_step(model, opt, sched, loss(), guard=guard, step=2)
    optimizer_step(model, opt, sched, loss(), guard=guard, step=3)
    assert guard.skipped_total == 2 and sched.last_epoch == 1
    with pytest.raises(TrainingDiverged, match=r"warm-up stopped at step 4: .* 3 steps in a row \(2\.\.4\)") as e:
        optimizer_step(model, opt, sched, loss(), guard=guard, step=4)
    assert isinstance(e.value, RunFailed)
    assert all(torch.equal(a, b) for a, b in zip(kept, model.parameters()))
    assert all(p.grad is None for p in model.parameters())

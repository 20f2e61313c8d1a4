"""Paths of the native trainer that no other test takes: the zero-advantage shortcut against a full
forward pass, EOS masking in ``generate``, the KL reference, several PPO epochs, token-unit RTS in
training, and DAPO's re-sampling. Tiny models on CPU, in-process (a few seconds in all)."""

from __future__ import annotations

import pytest
import torch

import sgpo.train.trainer as trainer_module
import sgpo.train.update as update_module
from sgpo.core import AGGREGATIONS, policy_loss
from sgpo.models.policies import arith_tokenizer
from sgpo.sampling.rollout import Rollout, generate, layout, token_logprobs
from sgpo.tasks.steps import split_steps
from sgpo.train.batches import Batch
from sgpo.train.config import load_config
from sgpo.train.trainer import Trainer
from sgpo.train.update import update_policy

G = 4
# The tests wrap optimizer.step to see what it is given; torch warns about exactly that.
pytestmark = pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden:UserWarning")


def make_trainer(tmp_path, *extra: str) -> Trainer:
    overrides = [
        "model.n_layers=1", "model.d_model=32", "model.n_heads=2", "task.n_train=16", "task.n_eval=2",
        "rollout.prompts_per_step=2", f"rollout.group_size={G}", "rollout.max_new_tokens=12",
        "train.steps=1", "train.eval_every=0", "train.eval_k=1", "train.progress=false", "train.bf16=false",
        "train.device=cpu", f"train.out_dir={tmp_path / 'run'}", *extra,
    ]
    return Trainer(load_config(None, overrides), log=lambda *a: None)


def fixed_rollout(trainer: Trainer, lengths=(1, 12, 3, 7, 12, 2, 5, 9), seed: int = 0) -> Rollout:
    """Responses of the given lengths (random tokens) to two prompts of different lengths."""
    g = torch.Generator().manual_seed(seed)
    vocab = len(trainer.tokenizer)
    prompts = [trainer.tokenizer("Start with 3. Add 2.\n", add_special_tokens=False)["input_ids"],
               trainer.tokenizer("Start with 13. Subtract 2. Add 5.\n", add_special_tokens=False)["input_ids"]]
    responses = [torch.randint(5, vocab, (n,), generator=g).tolist() for n in lengths]
    return layout([prompts[i * 2 // len(lengths)] for i in range(len(lengths))], responses, ["r"] * len(lengths),
                  trainer.tokenizer.pad_token_id, response_width=trainer.cfg.rollout.max_new_tokens)


def update(trainer: Trainer, rollout: Rollout, advantages: torch.Tensor) -> dict:
    """The update of the trainer's next step on ``rollout``, as ``Trainer.step`` runs it."""
    return update_policy(trainer.policy, trainer.optimizer, trainer.scheduler, rollout, advantages, trainer.cfg,
                         step=trainer.step_idx, device=trainer.device, ref=trainer.ref)


def capture_grads(trainer: Trainer) -> list[list[torch.Tensor]]:
    """Make the optimizer record the gradients it is given instead of stepping."""
    seen = []
    trainer.optimizer.step = lambda *a, **k: seen.append([p.grad.detach().clone() for p in trainer.trainable])
    return seen


def count_forwards(monkeypatch) -> list[int]:
    """Rows of every forward pass with gradients the trainer's update makes."""
    rows = []
    inner = update_module.token_logprobs

    def spy(model, rollout, *a, **k):
        rows.append(len(rollout.texts))
        return inner(model, rollout, *a, **k)

    monkeypatch.setattr(update_module, "token_logprobs", spy)
    return rows


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_skipping_zero_advantage_responses_gives_the_full_batch_gradient(tmp_path, monkeypatch, aggregation):
    trainer = make_trainer(tmp_path, "algorithm.method=grpo", f"algorithm.aggregation={aggregation}",
                           "optim.mini_batch_size=8", "optim.grad_clip=1e9")
    rollout = fixed_rollout(trainer)
    advantages = torch.tensor([0.0, 1.5, 0.0, -0.5, 0.0, 0.0, 2.0, -1.0])
    grads, rows = capture_grads(trainer), count_forwards(monkeypatch)
    update(trainer, rollout, advantages)
    assert rows == [4]  # only the four responses with a non-zero advantage went through the model
    (skipped,) = grads

    # The definition: one forward over all eight responses, the loss over all of them.
    policy, cfg = trainer.policy, trainer.cfg
    policy.train()
    policy.zero_grad(set_to_none=True)
    with torch.no_grad():
        old, _ = token_logprobs(policy, rollout, cfg.rollout.temperature)
    logp, _ = token_logprobs(policy, rollout, cfg.rollout.temperature)
    out = policy_loss(logp, old, advantages, rollout.response_mask, cfg.algorithm.eps_low, cfg.algorithm.eps_high,
                      aggregation, norm=cfg.rollout.max_new_tokens)
    out.loss.backward()
    full = [p.grad for p in trainer.trainable]
    assert max(g.abs().max().item() for g in full) > 1e-4  # a real gradient, not zeros on both sides
    for a, b in zip(skipped, full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_a_mini_batch_of_zero_advantages_is_no_forward_and_a_zero_gradient(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, "algorithm.method=grpo", "optim.mini_batch_size=4")
    grads, rows = capture_grads(trainer), count_forwards(monkeypatch)
    metrics = update(trainer, fixed_rollout(trainer), torch.zeros(8))
    assert rows == [] and len(grads) == 2  # two mini-batches, two optimizer steps, no forward pass
    assert all((g == 0).all() for step in grads for g in step)
    assert metrics["loss"] == 0.0 and metrics["kl"] == 0.0


def test_generate_masks_everything_after_the_first_eos():
    tokenizer = arith_tokenizer()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    a, b, c = tokenizer("1 +", add_special_tokens=False)["input_ids"][:3]
    produced = torch.tensor([
        [a, b, eos, c, c],      # EOS in the middle, then tokens a model kept writing
        [a, eos, eos, c, pad],  # a second EOS and padding after the first
        [eos, a, b, c, a],      # EOS first: a response of one token
        [a, b, c, a, b],        # no EOS: the length limit
    ])

    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, input_ids, attention_mask, **kw):
            return torch.cat([input_ids, produced[: len(input_ids)]], dim=1)

    out = generate(Scripted(), tokenizer, ["Start with 1.\n", "Start with 22. Add 3.\n"], n=2, max_new_tokens=5)
    assert out.response_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    T = out.response_mask.shape[1]
    assert torch.equal(out.attention_mask[:, -T:], out.response_mask)
    response = out.input_ids[:, -T:]
    assert (response[out.response_mask == 0] == pad).all()  # what came after EOS is gone
    assert response[0, :3].tolist() == [a, b, eos] and response[2, 0].item() == eos
    assert out.texts[0] == tokenizer.decode([a, b]) and out.texts[2] == "" and out.texts[3] == tokenizer.decode([a, b, c, a, b])


def test_generate_with_a_real_model_masks_after_eos(tmp_path):
    torch.manual_seed(3)
    trainer = make_trainer(tmp_path)
    tok = trainer.tokenizer
    # Make EOS likely, so that many responses end early (an untrained model rarely ends at all).
    bias = torch.zeros(len(tok))
    bias[tok.eos_token_id] = 3.0
    hook = trainer.policy.get_output_embeddings().register_forward_hook(lambda module, args, out: out + bias)
    try:
        out = generate(trainer.policy, tok, ["Start with 1. Add 2.\n"], n=32, max_new_tokens=12)
    finally:
        hook.remove()
    lengths = out.response_mask.sum(dim=1)
    assert 4 <= int((lengths < 12).sum()) < 32, lengths  # some ended early, some ran to the limit
    response = out.input_ids[:, -12:]
    for row, mask in zip(response.tolist(), out.response_mask.tolist()):
        n = sum(mask)
        assert mask == [1] * n + [0] * (12 - n)  # a prefix
        first_eos = row.index(tok.eos_token_id) if tok.eos_token_id in row[:n] else None
        assert n == (first_eos + 1 if first_eos is not None else 12)
        assert all(t == tok.pad_token_id for t in row[n:])


def test_a_kl_penalty_builds_a_frozen_reference_and_logs_kl_once_the_policy_moved(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, "algorithm.method=grpo", "algorithm.beta_kl=0.5", "optim.lr=1e-2",
                           "optim.warmup_steps=0", "optim.mini_batch_size=8")
    assert trainer.ref is not None and trainer.ref is not trainer.policy
    assert not any(p.requires_grad for p in trainer.ref.parameters())
    ref_before = [p.detach().clone() for p in trainer.ref.parameters()]
    rows = count_forwards(monkeypatch)
    rollout = fixed_rollout(trainer)
    advantages = torch.tensor([0.0, 1.5, 0.0, -0.5, 0.0, 0.0, 2.0, -1.0])
    first = update(trainer, rollout, advantages)
    assert first["kl"] == pytest.approx(0.0, abs=1e-7)  # the policy still is the reference
    second = update(trainer, rollout, advantages)
    assert second["kl"] > 1e-6
    assert rows == [8, 8]  # with a KL term zero-advantage responses are not skipped: they carry its gradient
    assert all(torch.equal(a, b) for a, b in zip(ref_before, trainer.ref.parameters()))  # the reference never moves
    metrics = trainer.step()
    assert metrics["kl"] > 1e-6


def test_several_ppo_epochs_reuse_the_old_logprobs_and_step_per_mini_batch(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, "algorithm.method=grpo", "optim.ppo_epochs=3", "optim.mini_batch_size=4",
                           "optim.lr=1e-2", "optim.warmup_steps=0")
    gaps = []
    inner = update_module.policy_loss

    def spy(logp, old_logp, advantages, mask, *a, **k):
        gaps.append(((logp - old_logp).abs() * mask).max().item())
        return inner(logp, old_logp, advantages, mask, *a, **k)

    monkeypatch.setattr(update_module, "policy_loss", spy)
    steps = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (steps.append(1), step(*a, **k))[1]
    before = trainer.scheduler.last_epoch
    metrics = update(trainer, fixed_rollout(trainer), torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1.0, -1.0]))
    assert len(steps) == len(gaps) == 3 * 2 and trainer.scheduler.last_epoch - before == 6
    # The first mini-batch sees the policy that sampled (ratio 1); afterwards the ratio moves away
    # from 1 because the old log-probs stay those taken before the first update.
    assert gaps[0] < 1e-6 and all(g > 1e-5 for g in gaps[2:]), gaps
    assert {"loss", "kl", "clip_frac", "grad_norm", "entropy"} <= set(metrics)


def _arith_batch(trainer: Trainer) -> tuple[Batch, dict[int, int]]:
    """Two problems' reference solutions with one line made wrong (or none), and where each goes wrong."""
    problems = trainer.train_problems[:2]
    texts, first_error = [], {}
    for p in problems:
        lines = p.reference.split("\n")
        for j, bad in enumerate([0, 1, len(lines) - 1, None]):
            wrong = list(lines)
            if bad is not None:
                wrong[bad] = wrong[bad].rstrip("0123456789") + "999"
                first_error[len(texts)] = bad
            texts.append("\n".join(wrong))
    ids = [trainer.tokenizer(t, add_special_tokens=False)["input_ids"] or [5] for t in texts]
    rollout = layout([[4, 5]] * len(texts), ids, texts, trainer.tokenizer.pad_token_id)
    return Batch(problems, rollout, torch.zeros(2, G)), first_error


def test_token_unit_rts_in_training_counts_tokens_before_the_first_wrong_step(tmp_path):
    trainer = make_trainer(tmp_path, "algorithm.method=sgpo", "algorithm.scope=all_incorrect", "algorithm.rts_unit=tokens",
                           "task.n_ops=3")
    batch, first_error = _arith_batch(trainer)
    graded = trainer._grade(batch, torch.Generator().manual_seed(0))
    by_steps = make_trainer(tmp_path / "steps", "algorithm.method=sgpo", "algorithm.scope=all_incorrect",
                            "task.n_ops=3")._grade(batch, torch.Generator().manual_seed(0))
    differ = 0
    for i, k in first_error.items():
        v = graded.verdicts[i]
        assert v.ok and v.first_error == k, (batch.rollout.texts[i], v)
        steps = split_steps(batch.rollout.texts[i], trainer.task.step_mode, trainer.cfg.judge.max_steps)
        counts = [max(1, len(trainer.tokenizer(s, add_special_tokens=False)["input_ids"])) for s in steps]
        assert graded.rts.view(-1)[i].item() == pytest.approx(sum(counts[:k]) / sum(counts))
        assert by_steps.rts.view(-1)[i].item() == pytest.approx(k / len(steps))
        differ += abs(graded.rts.view(-1)[i].item() - by_steps.rts.view(-1)[i].item()) > 1e-6
    assert differ > 0  # the unit matters: token shares are not step shares here
    metrics = trainer.step()  # and a whole training step runs with it
    assert 0.0 <= metrics["sgpo/rts_mean"] < 1.0


@pytest.mark.parametrize(
    "pattern, kept",
    [
        # one pattern per group (G = 4 outcomes), six groups: prompts_per_step 2 + 2 rounds x 2
        (["0000", "1111", "0100", "0000", "1100", "0001"], [2, 4]),  # the first two groups with signal, not the third
        (["0000", "1111", "0000", "0010", "1111", "0000"], [3]),  # only one group has signal: it alone
        (["0000"] * 6, []),  # none: no update at all
    ],
)
def test_dapo_resampling_keeps_at_most_prompts_per_step_groups_all_with_signal(tmp_path, monkeypatch, pattern, kept):
    trainer = make_trainer(tmp_path, "algorithm.method=dapo", "algorithm.dapo_resample_rounds=2")
    outcomes = iter([float(c) for group in pattern for c in group])
    trainer.task.verify = lambda text, problem: next(outcomes)  # scripted outcomes, in response order
    sampled, updated = [], []
    next_batch, real_update = trainer._next_batch, trainer_module.update_policy

    def spy_batch(n):
        batch = next_batch(n)
        sampled.append(batch)
        return batch

    def spy_update(policy, optimizer, scheduler, rollout, advantages, *a, **k):
        updated.append((rollout, advantages))
        return real_update(policy, optimizer, scheduler, rollout, advantages, *a, **k)

    trainer._next_batch = spy_batch
    monkeypatch.setattr(trainer_module, "update_policy", spy_update)
    metrics = trainer.step()
    (batch,) = sampled
    assert len(batch.problems) == 6 and batch.outcomes.tolist() == [[float(c) for c in g] for g in pattern]
    assert metrics["groups/kept_frac"] == pytest.approx(len(kept) / 6)
    if not kept:
        assert updated == [] and metrics["loss"] == 0.0 and metrics["grad_norm"] == 0.0  # no update, same names
        return
    (rollout, advantages), = updated
    rows = [g * G + j for g in kept for j in range(G)]
    assert rollout.texts == [batch.rollout.texts[i] for i in rows]
    assert torch.equal(rollout.input_ids, batch.rollout.input_ids[rows])
    for g in range(len(kept)):
        assert advantages[g * G : (g + 1) * G].abs().sum() > 0  # every kept group carries signal

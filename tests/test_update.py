"""The policy update's functions (sgpo.train.update) on a hand-made tiny model and rollout, without
a trainer: which rows go through the model, how their loss is rescaled, the sampling correction,
the old log-probs, the offline gap, the entropy, and the stop at the first non-finite step."""

from __future__ import annotations

import math

import pytest
import torch

from sgpo.models.policies import arith_tokenizer, tiny_policy
from sgpo.sampling.rollout import layout, token_logprobs
from sgpo.train.config import load_config
from sgpo.train.update import (
    active_rows,
    loss_share,
    needs_old_pass,
    no_update,
    old_logprobs,
    ppo_epochs,
    reference_logprobs,
    sampling_correction,
    update_policy,
)

CPU = torch.device("cpu")
T = 6


def config(*extra: str):
    return load_config(None, ["train.bf16=false", "train.device=cpu", "optim.warmup_steps=0", "optim.lr=1e-2",
                              f"rollout.max_new_tokens={T}", "optim.grad_clip=1e9", *extra])


@pytest.fixture(scope="module")
def tok():
    return arith_tokenizer()


def model(tok):
    return tiny_policy(tok, n_layers=1, d_model=32, n_heads=2, seed=0).eval()


def rollout(tok, lengths=(1, 6, 3, 4)):
    """Responses of the given lengths (fixed tokens) to two prompts of different lengths."""
    g = torch.Generator().manual_seed(0)
    prompts = [tok("Start with 3.\n", add_special_tokens=False)["input_ids"],
               tok("Start with 13. Add 5.\n", add_special_tokens=False)["input_ids"]]
    responses = [torch.randint(5, len(tok), (n,), generator=g).tolist() for n in lengths]
    return layout([prompts[i % 2] for i in range(len(lengths))], responses, ["r"] * len(lengths), tok.pad_token_id,
                  response_width=T)


def optimizer(policy):
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def test_active_rows_leave_out_zero_advantages_only_without_a_kl_term():
    adv = torch.tensor([0.0, 1.0, 0.0, -2.0, 0.5])
    idx = torch.tensor([4, 0, 3, 2])
    assert active_rows(idx, adv, with_kl=False).tolist() == [4, 3]  # idx's order kept
    assert active_rows(idx, adv, with_kl=True).tolist() == [4, 0, 3, 2]
    assert active_rows(idx, torch.zeros(5), with_kl=False).tolist() == []


def test_loss_share_is_the_active_rows_part_of_the_mini_batch():
    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0], [0, 0, 0]])
    idx, active = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2])
    assert loss_share(mask, active, idx, "token_mean").item() == pytest.approx(5 / 6)  # tokens: (3 + 2) of 6
    assert loss_share(mask, active, idx, "seq_mean_token_mean").item() == pytest.approx(2 / 4)  # sequences
    assert loss_share(mask, torch.tensor([3]), torch.tensor([3]), "token_mean").item() == 0.0  # no tokens: no 0/0


def test_the_sampling_correction_truncates_the_weights_but_reports_the_ratios_untruncated():
    old = torch.tensor([[0.0, -1.0, -2.0], [-1.0, 0.0, 0.0]])
    sample = old - torch.tensor([[math.log(2.0), math.log(5.0), 0.0], [math.log(0.5), 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    weights, ratios = sampling_correction(old, sample, mask, cap=3.0)
    torch.testing.assert_close(weights, torch.tensor([[2.0, 3.0, 1.0], [0.5, 1.0, 1.0]]))
    torch.testing.assert_close(ratios, torch.tensor([2.0, 5.0, 1.0, 0.5]))  # the masked tokens, in order


@pytest.mark.parametrize("epochs, mb, behaviour, expected", [
    (1, 4, False, False),  # one epoch of one mini-batch, on-policy: the forward's own log-probs
    (2, 4, False, True), (1, 2, False, True), (1, 4, True, True),
])
def test_the_old_logprobs_take_a_pass_of_their_own_unless_the_policy_cannot_have_moved(epochs, mb, behaviour, expected):
    cfg = config(f"optim.ppo_epochs={epochs}", f"optim.mini_batch_size={mb}")
    assert needs_old_pass(4, cfg, torch.zeros(4, T) if behaviour else None) is expected


def test_old_logprobs_are_the_policys_own_or_the_stored_behaviour_ones(tok):
    policy, r = model(tok), rollout(tok)
    with torch.no_grad():
        exact, ent = token_logprobs(policy, r, 1.0, with_entropy=True)
    single = old_logprobs(policy, r, config("optim.mini_batch_size=4"), CPU)
    assert single.current is None and single.old is None and single.entropy is None
    two = old_logprobs(policy, r, config("optim.mini_batch_size=2"), CPU)
    torch.testing.assert_close(two.old, exact)
    torch.testing.assert_close(two.entropy, ent)
    behaviour = exact - 0.25
    stored = old_logprobs(policy, r, config("optim.mini_batch_size=4"), CPU, behaviour)
    torch.testing.assert_close(stored.current, exact)
    assert torch.equal(stored.old, behaviour)
    assert reference_logprobs(None, r, config(), CPU) is None
    torch.testing.assert_close(reference_logprobs(policy, r, config("optim.mini_batch_size=3"), CPU), exact)


def test_the_offline_gap_is_how_far_the_policy_is_from_the_stored_logprobs(tok):
    policy, r = model(tok), rollout(tok)
    with torch.no_grad():
        exact, _ = token_logprobs(policy, r, 1.0)
    behaviour = (exact - 0.5) * r.response_mask  # 0.5 below the policy on every response token
    opt, sched = optimizer(policy)
    metrics = update_policy(policy, opt, sched, r, torch.tensor([1.0, -1.0, 0.5, 0.0]), config("optim.mini_batch_size=4"),
                            step=0, device=CPU, behaviour_logp=behaviour)
    assert metrics["offline/logp_gap_mean"] == pytest.approx(0.5, abs=1e-5)
    assert metrics["offline/logp_gap_max"] == pytest.approx(0.5, abs=1e-5)
    assert metrics["skipped"] is False and metrics["clip_frac"] > 0  # ratios exp(0.5) > 1.2: clipped


def test_without_a_sampler_entropy_the_entropy_is_that_of_the_rows_trained_on(tok):
    policy, r = model(tok), rollout(tok)
    adv = torch.tensor([0.0, 1.0, 0.0, -1.0])  # rows 1 and 3 are trained on
    with torch.no_grad():
        _, ent = token_logprobs(policy, r, 1.0, with_entropy=True)
    mask = r.response_mask.float()
    trained = (ent[[1, 3]] * mask[[1, 3]]).sum() / mask[[1, 3]].sum()
    everyone = (ent * mask).sum() / mask.sum()
    assert abs(trained - everyone) > 1e-4  # the two differ, so the test tells them apart
    opt, sched = optimizer(policy)
    metrics = update_policy(policy, opt, sched, r, adv, config("optim.mini_batch_size=4"), step=0, device=CPU)
    assert metrics["entropy"] == pytest.approx(trained.item(), rel=1e-5)
    assert set(no_update(policy, r, config(), CPU)) <= set(metrics)  # a step without update logs the same names


def test_a_non_finite_loss_ends_the_update_at_its_first_step_and_changes_nothing(tok):
    policy, r = model(tok), rollout(tok)
    before = [p.detach().clone() for p in policy.parameters()]
    opt, sched = optimizer(policy)
    cfg = config("optim.ppo_epochs=2", "optim.mini_batch_size=2")  # four steps, were they all finite
    old = old_logprobs(policy, r, cfg, CPU)
    seen = ppo_epochs(policy, opt, sched, r, torch.tensor([1.0, float("nan"), -1.0, float("nan")]), cfg, CPU, 0, old)
    assert seen.applied is False and len(seen.stats["loss"]) == len(seen.stats["grad_norm"]) == 1
    assert math.isnan(seen.stats["loss"][0])
    assert sched.last_epoch == 0 and not opt.state  # neither the optimizer nor the schedule stepped
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert all(p.grad is None for p in policy.parameters())
    assert not policy.training  # left in eval mode, as the sampler expects
    finite = ppo_epochs(policy, opt, sched, r, torch.tensor([1.0, 0.5, -1.0, -0.5]), cfg, CPU, 0, old)
    assert finite.applied and len(finite.stats["loss"]) == 4 and sched.last_epoch == 4


def test_the_shuffle_depends_on_the_step_and_a_repeat_of_a_step_is_exact(tok):
    cfg = config("optim.mini_batch_size=2", "optim.ppo_epochs=2")
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    results = []
    for step in (0, 0, 1):
        policy = model(tok)
        opt, sched = optimizer(policy)
        update_policy(policy, opt, sched, rollout(tok), adv, cfg, step=step, device=CPU)
        results.append([p.detach().clone() for p in policy.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(results[0], results[1]))
    assert not all(torch.equal(a, b) for a, b in zip(results[0], results[2]))

"""The KV-cache sampler (sgpo.sampling.kv_cache) against transformers' generate and a full forward pass, and
the trainer's single-pass update and sampling correction. Tiny models on CPU, in-process."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sgpo.core import policy_loss
from sgpo.models.policies import arith_tokenizer, tiny_policy
from sgpo.sampling.kv_cache import supports
from sgpo.sampling.rollout import generate, resolve_sampler, token_logprobs
from sgpo.train.config import load_config
from sgpo.train.trainer import Trainer
from sgpo.train.update import update_policy

PROMPTS = ["Start with 3. Add 2.\n", "Start with 13. Subtract 2. Add 5. Add 1.\n", "Start with 7.\n"]


def gqa_llama(tok) -> LlamaForCausalLM:
    """A Llama with grouped-query attention (4 query heads share 2 key/value heads)."""
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


MODELS = {
    "llama": lambda tok: tiny_policy(tok, "llama", n_layers=2, d_model=32, n_heads=2).eval(),
    "qwen2": lambda tok: tiny_policy(tok, "qwen2", n_layers=2, d_model=32, n_heads=2).eval(),  # q/k/v biases
    "llama-gqa": gqa_llama,
}


@pytest.mark.parametrize("arch", list(MODELS))
def test_greedy_kv_sampling_writes_what_generate_writes(arch):
    tok = arith_tokenizer()
    model = MODELS[arch](tok)
    assert supports(model) and resolve_sampler("auto", model) == "kv"
    hf = generate(model, tok, PROMPTS, n=1, max_new_tokens=16, greedy=True, sampler="hf")
    kv = generate(model, tok, PROMPTS, n=1, max_new_tokens=16, greedy=True, sampler="kv")
    assert torch.equal(kv.input_ids, hf.input_ids) and torch.equal(kv.response_mask, hf.response_mask)
    assert kv.texts == hf.texts


@pytest.mark.parametrize("arch", list(MODELS))
def test_kv_sampling_logprobs_and_entropies_are_a_full_forward_pass(arch):
    tok = arith_tokenizer()
    model = MODELS[arch](tok)
    torch.manual_seed(1)
    out = generate(model, tok, PROMPTS, n=4, temperature=1.3, max_new_tokens=12, sampler="kv")
    with torch.no_grad():
        logp, entropy = token_logprobs(model, out, temperature=1.3, with_entropy=True)
    mask = out.response_mask.float()
    assert mask.sum() > 12  # real responses, not empty ones
    torch.testing.assert_close(out.sample_logp, logp * mask, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.sample_entropy, entropy * mask, rtol=0, atol=1e-4)


def test_kv_sampling_is_seeded_and_stops_at_every_stop_id():
    tok = arith_tokenizer()
    model = MODELS["llama"](tok)
    stop = tok.convert_tokens_to_ids("7")  # an end-of-turn token besides EOS
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    bias = torch.zeros(len(tok))
    bias[[tok.eos_token_id, stop]] = 2.5  # end early often, but not always
    hook = model.get_output_embeddings().register_forward_hook(lambda m, a, o: o + bias)
    try:
        runs = []
        for _ in range(2):
            torch.manual_seed(5)
            runs.append(generate(model, tok, PROMPTS, n=8, max_new_tokens=12, sampler="kv"))
    finally:
        hook.remove()
    a, b = runs
    assert torch.equal(a.input_ids, b.input_ids)  # same seed, same responses
    T = a.response_mask.shape[1]
    response, lengths = a.input_ids[:, -T:], a.response_mask.sum(1)
    assert 0 < int((lengths < T).sum()) < len(lengths)
    for row, n in zip(response.tolist(), lengths.tolist()):
        assert a.response_mask[0].dtype == torch.long
        ends = [i for i, t in enumerate(row[:n]) if t in (tok.eos_token_id, stop)]
        assert ends == ([n - 1] if n < T or row[n - 1] in (tok.eos_token_id, stop) else [])  # only the last may stop
        assert all(t == tok.pad_token_id for t in row[n:])


def test_a_tiny_top_p_samples_the_greedy_response():
    tok = arith_tokenizer()
    model = MODELS["llama"](tok)
    greedy = generate(model, tok, PROMPTS, n=1, max_new_tokens=10, greedy=True, sampler="kv")
    torch.manual_seed(0)
    nucleus = generate(model, tok, PROMPTS, n=1, max_new_tokens=10, top_p=1e-6, sampler="kv")
    assert torch.equal(nucleus.input_ids, greedy.input_ids)


def make_trainer(tmp_path, *extra: str) -> Trainer:
    overrides = [
        "model.n_layers=1", "model.d_model=32", "model.n_heads=2", "task.n_train=16", "task.n_eval=2",
        "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=12", "algorithm.method=grpo",
        "train.steps=1", "train.eval_every=0", "train.eval_k=1", "train.progress=false", "train.bf16=false",
        "train.device=cpu", f"train.out_dir={tmp_path / 'run'}", "optim.grad_clip=1e9", *extra,
    ]
    return Trainer(load_config(None, overrides), log=lambda *a: None)


def update(trainer: Trainer, rollout, advantages, behaviour_logp=None) -> dict:
    """The update of the trainer's next step on ``rollout``, as ``Trainer.step`` runs it."""
    return update_policy(trainer.policy, trainer.optimizer, trainer.scheduler, rollout, advantages, trainer.cfg,
                         step=trainer.step_idx, device=trainer.device, ref=trainer.ref, behaviour_logp=behaviour_logp)


def count_policy_forwards(trainer: Trainer) -> list[int]:
    calls = []
    trainer.policy.register_forward_hook(lambda m, a, k, o: calls.append(1), with_kwargs=True)
    return calls


def sampled_rollout(trainer: Trainer):
    torch.manual_seed(0)
    rollout = generate(trainer.policy, trainer.tokenizer, PROMPTS[:2], n=4, temperature=1.0, max_new_tokens=12, sampler="kv")
    assert rollout.sample_logp is not None
    return rollout


ADV = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1.0, -1.0])


@pytest.mark.parametrize("epochs, mini_batch, forwards", [(1, 8, 1), (2, 8, 3), (1, 4, 4)])
def test_one_epoch_of_one_mini_batch_runs_one_forward_pass(tmp_path, epochs, mini_batch, forwards):
    """One epoch, one mini-batch: the update's own forward gives the old log-probs. Otherwise a
    forward pass before the first step takes them (one per mini-batch-sized chunk), then one per mini-batch step."""
    trainer = make_trainer(tmp_path, f"optim.ppo_epochs={epochs}", f"optim.mini_batch_size={mini_batch}")
    rollout = sampled_rollout(trainer)
    calls = count_policy_forwards(trainer)
    metrics = update(trainer, rollout, ADV)
    assert len(calls) == forwards
    assert metrics["entropy"] > 0 and 0.99 < metrics["sampling/is_ratio_mean"] < 1.01


def test_the_single_pass_update_has_the_gradient_of_the_two_pass_one(tmp_path):
    grads = {}
    for path in ("single", "two-pass"):
        trainer = make_trainer(tmp_path / path, "optim.mini_batch_size=8", "rollout.is_cap=0")
        seen = []
        trainer.optimizer.step = lambda *a, **k: seen.append([p.grad.detach().clone() for p in trainer.trainable])
        rollout = sampled_rollout(trainer)
        if path == "two-pass":  # old log-probs from a separate no-grad forward, given as behaviour log-probs
            with torch.no_grad():
                old, _ = token_logprobs(trainer.policy, rollout, 1.0)
            update(trainer, rollout, ADV, behaviour_logp=old)
        else:
            update(trainer, rollout, ADV)
        grads[path] = seen[0]
    assert max(g.abs().max().item() for g in grads["single"]) > 1e-5
    for a, b in zip(grads["single"], grads["two-pass"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("ratio, applied", [(2.0, 2.0), (5.0, 3.0), (0.5, 0.5)])
def test_the_sampling_correction_weights_each_token_by_its_truncated_ratio(tmp_path, ratio, applied):
    """Sampling log-probs lower than the policy's by log(ratio): every token's loss is weighted by the
    ratio, truncated at rollout.is_cap = 3, so the gradient scales by that much."""
    grads = []
    for shift in (0.0, math.log(ratio)):
        trainer = make_trainer(tmp_path / str(shift), "optim.mini_batch_size=8", "rollout.is_cap=3")
        seen = []
        trainer.optimizer.step = lambda *a, **k: seen.append([p.grad.detach().clone() for p in trainer.trainable])
        rollout = sampled_rollout(trainer)
        with torch.no_grad():
            exact, _ = token_logprobs(trainer.policy, rollout, 1.0)
        rollout.sample_logp = (exact - shift) * rollout.response_mask
        metrics = update(trainer, rollout, ADV)
        grads.append(seen[0])
    assert metrics["sampling/is_ratio_mean"] == pytest.approx(ratio, rel=1e-4)
    assert metrics["sampling/is_clipped_frac"] == (1.0 if ratio > 3 else 0.0)
    for base, weighted in zip(*grads):
        torch.testing.assert_close(weighted, base * applied, rtol=1e-4, atol=1e-7)


def test_policy_loss_token_weights_scale_each_tokens_loss():
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(3, 5, generator=g, requires_grad=True)
    old = logp.detach() + 0.1 * torch.randn(3, 5, generator=g)
    adv, mask = torch.tensor([1.0, -0.5, 2.0]), torch.ones(3, 5)
    w = torch.rand(3, 5, generator=g) + 0.5
    weighted = policy_loss(logp, old, adv, mask, token_weights=w).loss
    plain = policy_loss(logp, old, adv, mask, aggregation="token_mean")
    per_token = -torch.minimum(torch.exp(logp - old) * adv[:, None],
                               torch.exp(logp - old).clamp(0.8, 1.2) * adv[:, None])
    torch.testing.assert_close(weighted, (per_token * w).mean())
    torch.testing.assert_close(plain.loss, per_token.mean())


def test_packed_bf16_weights_sample_what_the_plain_bf16_step_samples():
    """Under bf16 autocast the decode step's linear layers go through oneDNN-packed weights: the same
    tokens and log-probs as the modules' own bf16 matmuls, and close to a bf16 full forward."""
    tok = arith_tokenizer()
    model = MODELS["qwen2"](tok)  # with biases
    from sgpo.sampling.kv_cache import _can_pack, sample_tokens

    enc = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    runs = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if not _can_pack(model):
            pytest.skip("this torch build has no oneDNN packed linear")
        for pack in (True, False):
            torch.manual_seed(2)
            runs[pack] = sample_tokens(model, enc["input_ids"], enc["attention_mask"], 10, [tok.eos_token_id],
                                       tok.pad_token_id, temperature=1.0, pack=pack)
    (ids_p, _, logp_p, _), (ids_u, _, logp_u, _) = runs[True], runs[False]
    assert torch.equal(ids_p, ids_u)
    torch.testing.assert_close(logp_p, logp_u, rtol=0, atol=1e-3)

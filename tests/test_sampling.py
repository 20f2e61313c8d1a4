"""Sampling details a real model exposes: every stop id ends a response, truncation is known, BOS is added."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from sgpo.models.policies import arith_tokenizer, tiny_policy  # noqa: E402
from sgpo.sampling.rollout import Rollout, bos_text, format_prompt, generate, stop_ids, truncated_rows  # noqa: E402


def test_generation_config_eos_ids_also_stop_a_response():
    tok = arith_tokenizer()
    model = tiny_policy(tok, n_layers=1, d_model=32, n_heads=2)
    stop = tok.convert_tokens_to_ids("7")  # pretend "7" is the model's end-of-turn token
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    assert stop_ids(model, tok) == [tok.eos_token_id, stop]
    model.generation_config.sequence_bias = [[[stop], 4.0]]  # "7" now and then, not at once
    torch.manual_seed(0)
    out = generate(model, tok, ["Start with 1."], n=8, max_new_tokens=12)
    ids = out.input_ids[:, -out.response_mask.shape[1]:]
    stopped = 0
    for row in range(8):
        n = int(out.response_mask[row].sum())
        toks = ids[row, :n].tolist()
        assert stop not in toks[:-1]  # nothing is generated past the stop id
        stopped += toks[-1] == stop
        assert (ids[row, n:] == tok.pad_token_id).all()  # the rest is padding, out of the mask
    assert 0 < stopped
    assert truncated_rows(out, stop_ids(model, tok)).sum() == 8 - stopped - sum(
        int(ids[r, int(out.response_mask[r].sum()) - 1]) == tok.eos_token_id for r in range(8))


def test_truncated_rows():
    # prompt width 1, response width 3; eos id 9
    ids = torch.tensor([[5, 1, 2, 3], [5, 1, 9, 0], [5, 1, 2, 9]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]])
    r = Rollout(ids, torch.cat([torch.ones(3, 1, dtype=torch.long), mask], 1), mask, ["", "", ""])
    assert truncated_rows(r, [9]).tolist() == [True, False, False]


def test_plain_prompts_get_bos_where_the_tokenizer_adds_it(tmp_path):
    tok = arith_tokenizer()  # adds no special tokens itself: nothing is prepended
    assert bos_text(tok) == "" and format_prompt("q", tok, template="plain") == "q\n"
    from tokenizers import processors

    with_bos = arith_tokenizer()
    with_bos._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", with_bos.bos_token_id)])
    assert bos_text(with_bos) == "<bos>"
    prompt = format_prompt("q", with_bos, template="plain")
    ids = with_bos(prompt, add_special_tokens=False)["input_ids"]
    assert prompt == "<bos>q\n" and ids[0] == with_bos.bos_token_id and ids.count(with_bos.bos_token_id) == 1

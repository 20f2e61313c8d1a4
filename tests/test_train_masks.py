"""Truncated responses out of the loss, and one metric schema whether or not a step trains."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from testkit import tiny_overrides  # noqa: E402

from sgpo.train.compare import default_config_path  # noqa: E402
from sgpo.train.config import load_config  # noqa: E402
from sgpo.train.trainer import Trainer  # noqa: E402

UPDATE_KEYS = {"loss", "kl", "clip_frac", "entropy", "grad_norm"}


def steps(tmp_path, name, *extra, n=2):
    cfg = load_config(default_config_path(), tiny_overrides(tmp_path, f"train.steps={n}", "train.eval_every=0",
                                                            "train.save_every=0", *extra))
    t = Trainer(cfg, tmp_path / name, log=lambda *a: None)
    return [t.step() for _ in range(n)]


def test_masking_truncated_completions_leaves_them_out_of_the_loss(tmp_path):
    # 3 new tokens cannot finish an answer: every response is cut, so nothing trains.
    # The random control gives every (all-negative) group signal, so only the mask can stop the update.
    # The near-random policy can still sample EOS within 3 tokens; with `generate`'s stream of draws
    # under this seed it does not (the KV-cache sampler's stream, under the same seed, does once).
    masked = steps(tmp_path, "masked", "rollout.max_new_tokens=3", "rollout.mask_truncated_completions=true",
                   "algorithm.method=random", "rollout.sampler=hf")
    kept = steps(tmp_path, "kept", "rollout.max_new_tokens=3", "algorithm.method=random", "rollout.sampler=hf")
    for m in masked:
        assert m["response/truncated_frac"] == 1.0
        assert m["loss"] == 0.0 and m["grad_norm"] == 0.0
    assert any(m["grad_norm"] > 0 for m in kept)  # the same responses train without the option


def test_a_step_that_trains_nothing_logs_the_same_names(tmp_path):
    # G = 4 responses of 3 tokens are all wrong: DAPO drops every group, so the update has no rows.
    nothing = steps(tmp_path, "dapo", "rollout.max_new_tokens=3", "algorithm.method=dapo")
    trained = steps(tmp_path, "grpo", "algorithm.method=grpo", "algorithm.scope=all_incorrect")
    for m in nothing:
        assert m["groups/kept_frac"] == 0.0
        assert UPDATE_KEYS <= set(m) and m["loss"] == 0.0 and m["entropy"] > 0
    assert set(nothing[0]) == set(trained[0])

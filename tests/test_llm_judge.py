"""LLMJudge: prompt, strict parsing, voting, and the HTTP backend against fake servers on loopback
that fail in every way a real one can (500s, 429s, garbage, slowness, absence, death mid-batch)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fixtures_server import FakeServer, Response, completion, free_port, stop, wait_ready

from sgpo.judges import JudgeRequest, Verdict
from sgpo.judges.cached import CachedJudge
from sgpo.judges.config import JudgeConfig, build_judge, load_judge_config
from sgpo.judges.llm import LLMJudge, Reply, vote
from sgpo.judges.llm_http import OpenAIChatBackend
from sgpo.judges.prompts import DEFAULT_TEMPLATE, load_template, parse_verdict, render_prompt
from sgpo.judges.stats import collect_stats

PROBLEM = "Start with 7. Add 5. Multiply by 3."
STEPS = ["7 + 5 = 12", "12 * 3 = 37", "Answer: 37"]
REQ = JudgeRequest(PROBLEM, STEPS, reference="7 + 5 = 12\n12 * 3 = 36\nAnswer: 36", answer="36")


def backend(url: str, **kw) -> OpenAIChatBackend:
    """A backend with fast retries, so fault tests stay quick."""
    kw = {"model": "m", "timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01, "backoff_max_s": 0.05, **kw}
    return OpenAIChatBackend(url, **kw)


def last_tag(body: dict) -> int:
    """The highest step index the prompt tagged: a fake judge that 'finds' the last step wrong."""
    return max(int(i) for i in re.findall(r"<step_(\d+)>", body["messages"][-1]["content"]))


# --- prompt -------------------------------------------------------------------------------


def test_prompt_tags_steps_from_zero_and_shows_reference():
    text = render_prompt(REQ)
    for i, step in enumerate(STEPS):
        assert f"<step_{i}>\n{step}\n</step_{i}>" in text
    assert "<step_3>" not in text
    assert PROBLEM in text and "12 * 3 = 36" in text and "(0 to 2)" in text and "\\boxed{}" in text
    without = render_prompt(JudgeRequest(PROBLEM, STEPS))
    assert "Reference solution" not in without and "{reference" not in without


def test_template_placeholders_are_literal_and_not_recursive(tmp_path):
    tricky = JudgeRequest("What is {steps}? Use \\frac{1}{2}.", ["a"])
    text = render_prompt(tricky, "P: {problem}\nS: {steps}\nK={n_steps} \\boxed{}")
    assert text == "P: What is {steps}? Use \\frac{1}{2}.\nS: <step_0>\na\n</step_0>\nK=1 \\boxed{}"
    f = tmp_path / "t.txt"
    f.write_text("custom {problem}")
    assert load_template(template_file=f) == "custom {problem}"
    assert load_template() == DEFAULT_TEMPLATE
    with pytest.raises(ValueError):
        load_template("a", f)


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, index", [
    ("The earliest error is in step 1: \\boxed{1}", 1),
    ("All steps are fine. \\boxed{-1}", -1),
    ("\\boxed{ 2 }", 2),
    ("\\boxed {0}", 0),
    ("<think>maybe \\boxed{0}? no.</think>Final: \\boxed{2}", 2),
])
def test_parse_accepts_exactly_one_boxed_index(text, index):
    v = parse_verdict(text, 3)
    assert v.ok and v.first_error == index and v.n_steps == 3 and v.raw == text


@pytest.mark.parametrize("text", [
    "step 1 is wrong",               # no box
    "\\boxed{1} or maybe \\boxed{2}",  # several boxes
    "\\boxed{1} and again \\boxed{1}",  # several boxes, even if they agree
    "\\boxed{3}",                    # out of range (K = 3)
    "\\boxed{-2}",                   # out of range
    "\\boxed{1.5}", "\\boxed{two}", "\\boxed{}", "\\boxed{1", "\\boxed 1",
    "<think>\\boxed{1}</think> no answer",  # boxes while thinking do not count
    "", None,
])
def test_parse_rejects_everything_else_as_invalid(text):
    v = parse_verdict(text, 3)
    assert v.status == "invalid" and v.first_error == -1 and v.n_steps == 3


def test_vote_majority_ties_and_failures():
    ok = lambda k: Verdict(k, 4, raw=str(k))  # noqa: E731
    bad = Verdict.failed(4, "invalid", "?")
    assert vote([ok(1), ok(2), ok(1)], 4).first_error == 1
    assert vote([ok(2), bad, bad], 4).first_error == 2  # failures do not vote
    assert vote([ok(3), ok(0)], 4).first_error == 3    # tie: first sampled wins
    assert vote([bad, Verdict.failed(4, "timeout"), Verdict.failed(4, "timeout")], 4).status == "timeout"
    assert vote([ok(-1)], 4) == ok(-1)


# --- HTTP backend: the normal path ----------------------------------------------------------


def test_http_judge_maps_indices_and_sends_a_proper_request(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "s3cret")
    with FakeServer(lambda i, body: Response(body=completion(f"\\boxed{{{last_tag(body)}}}"))) as fake:
        judge = LLMJudge(backend(fake.base_url, api_key_env="JUDGE_KEY", temperature=0.0, max_tokens=77))
        requests = [JudgeRequest(PROBLEM, STEPS[:k]) for k in (1, 2, 3)] + [REQ]
        verdicts = judge.judge(requests)
    assert [(v.first_error, v.n_steps, v.status) for v in verdicts] == [(0, 1, "ok"), (1, 2, "ok"), (2, 3, "ok"), (2, 3, "ok")]
    body = fake.requests[0]
    assert body["model"] == "m" and body["temperature"] == 0.0 and body["max_tokens"] == 77 and "n" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert all(h["authorization"] == "Bearer s3cret" for h in fake.headers)
    assert judge.stats.calls == 4 and judge.stats.verdicts == 4 and not judge.stats.failures


def test_http_model_discovery_and_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(lambda i, body: Response(body=completion("\\boxed{-1}"))) as fake:
        judge = LLMJudge(backend(fake.base_url, model=None))
        assert judge.judge([REQ, REQ])[0].first_error == -1
    assert {r["model"] for r in fake.requests} == {"fake-model"}
    assert all("authorization" not in h for h in fake.headers)


def test_http_concurrency_is_bounded_and_used():
    with FakeServer(lambda i, body: Response(body=completion("\\boxed{0}"), delay=0.2)) as fake:
        judge = LLMJudge(backend(fake.base_url, concurrency=3))
        start = time.perf_counter()
        verdicts = judge.judge([JudgeRequest(f"p{i}", ["a", "b"]) for i in range(9)])
        elapsed = time.perf_counter() - start
    assert all(v.ok and v.first_error == 0 for v in verdicts)
    assert fake.max_in_flight == 3
    assert elapsed < 9 * 0.2  # ran in parallel, about 3 waves of 0.2 s


def test_http_majority_vote_over_separate_samples_and_over_n():
    answers = {0: 1, 1: 2, 2: 1}  # request number -> boxed index
    with FakeServer(lambda i, body: Response(body=completion(f"\\boxed{{{answers[i]}}}"))) as fake:
        verdict, = LLMJudge(backend(fake.base_url, temperature=0.7), samples=3).judge([REQ])
    assert verdict.ok and verdict.first_error == 1 and "votes {1: 2, 2: 1}" in verdict.raw and len(fake.requests) == 3

    def n_choices(i, body):
        texts = ["\\boxed{0}", "\\boxed{2}", "\\boxed{2}"][: body["n"]]
        return Response(body={"choices": [{"message": {"content": t}} for t in texts]})

    with FakeServer(n_choices) as fake:
        verdict, = LLMJudge(backend(fake.base_url, use_n=True, temperature=0.7), samples=3).judge([REQ])
    assert verdict.first_error == 2 and len(fake.requests) == 1 and fake.requests[0]["n"] == 3


def test_http_judge_works_inside_a_running_event_loop():
    with FakeServer(lambda i, body: Response(body=completion("\\boxed{1}"))) as fake:
        judge = LLMJudge(backend(fake.base_url))

        async def caller():
            return judge.judge([REQ])

        assert asyncio.run(caller())[0].first_error == 1


# --- HTTP backend: faults -------------------------------------------------------------------


def test_http_retries_500_and_429_then_succeeds():
    script = [Response(500, "boom"), Response(429, "slow down", headers={"retry-after": "0"}), Response(body=completion("\\boxed{1}"))]
    with FakeServer(lambda i, body: script[i]) as fake:
        judge = LLMJudge(backend(fake.base_url, max_retries=2))
        verdict, = judge.judge([REQ])
    assert verdict.ok and verdict.first_error == 1
    assert judge.stats.calls == 3 and judge.stats.retries == 2


def test_http_persistent_500_fails_as_error_after_bounded_retries():
    with FakeServer(lambda i, body: Response(500, "internal error")) as fake:
        judge = LLMJudge(backend(fake.base_url, max_retries=2))
        verdicts = judge.judge([REQ, JudgeRequest("other", ["x"])])
    assert [v.status for v in verdicts] == ["error", "error"]
    assert "HTTP 500" in verdicts[0].raw and len(fake.requests) == 6  # 2 requests x (1 + 2 retries)
    assert judge.stats.failures["error"] == 2


def test_http_client_errors_are_not_retried():
    with FakeServer(lambda i, body: Response(400, '{"detail": "bad model"}')) as fake:
        verdict, = LLMJudge(backend(fake.base_url, max_retries=3)).judge([REQ])
    assert verdict.status == "error" and "HTTP 400" in verdict.raw and len(fake.requests) == 1


@pytest.mark.parametrize("response, status", [
    (Response(body=b"<html>not json</html>"), "error"),           # garbage body
    (Response(body={"object": "chat.completion"}), "error"),      # JSON but no choices
    (Response(body=completion("Step two looks odd to me.")), "invalid"),  # garbage answer
    (Response(body=completion("\\boxed{7}")), "invalid"),         # index out of range
    (Response(body={"choices": [{"message": {"content": None}}]}), "invalid"),  # reasoning ran out
])
def test_http_garbage_replies(response, status):
    with FakeServer(lambda i, body: response) as fake:
        verdict, = LLMJudge(backend(fake.base_url)).judge([REQ])
    assert verdict.status == status and verdict.first_error == -1 and verdict.n_steps == 3


def test_http_timeout_fails_fast_without_retry():
    with FakeServer(lambda i, body: Response(body=completion("\\boxed{0}"), delay=3.0)) as fake:
        judge = LLMJudge(backend(fake.base_url, timeout_s=0.3, max_retries=2))
        start = time.perf_counter()
        verdicts = judge.judge([REQ, REQ])
        elapsed = time.perf_counter() - start
    assert [v.status for v in verdicts] == ["timeout", "timeout"] and elapsed < 2.0
    assert judge.stats.retries == 0 and judge.stats.failures["timeout"] == 2


def test_http_server_not_running():
    url = f"http://127.0.0.1:{free_port()}/v1"
    judge = LLMJudge(backend(url, max_retries=1))
    verdicts = judge.judge([REQ] * 3)
    assert [v.status for v in verdicts] == ["error"] * 3 and "Connect" in verdicts[0].raw
    assert judge.stats.calls == 6  # each tried twice
    # Without a model name the judge asks the server which one; that fails cleanly too.
    assert LLMJudge(backend(url, model=None)).judge([REQ])[0].status == "error"


def test_http_server_killed_mid_batch():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fixtures_server.py")), str(port), "0.25"],
                            stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models", proc, timeout=30)

        def kill_after_two_replies():
            for line in proc.stdout:
                if line.strip() == "served 2":
                    proc.kill()
                    return

        killer = threading.Thread(target=kill_after_two_replies, daemon=True)
        killer.start()
        judge = LLMJudge(backend(f"http://127.0.0.1:{port}/v1", concurrency=2, max_retries=1))
        verdicts = judge.judge([JudgeRequest(f"p{i}", ["a", "b"]) for i in range(10)])
        killer.join(timeout=5)
    finally:
        stop(proc)
    statuses = [v.status for v in verdicts]
    assert len(verdicts) == 10 and set(statuses) <= {"ok", "error"}
    assert 1 <= statuses.count("ok") <= 4 and statuses.count("error") >= 6
    assert all(v.first_error == 0 for v in verdicts if v.ok)


def test_a_crashing_backend_and_empty_responses_never_raise():
    class Broken:
        stats = OpenAIChatBackend("http://x").stats

        def complete(self, conversations, samples):
            raise RuntimeError("backend bug")

    verdicts = LLMJudge(Broken()).judge([REQ, JudgeRequest("p", [])])
    assert verdicts[0].status == "error" and "backend bug" in verdicts[0].raw
    assert verdicts[1] == Verdict.failed(0, "invalid", "response has no steps")

    class Short(Broken):
        def complete(self, conversations, samples):
            return [[Reply("\\boxed{0}")]]  # one list for two requests

    assert [v.status for v in LLMJudge(Short()).judge([REQ, REQ])] == ["error", "error"]


# --- config ---------------------------------------------------------------------------------


def test_build_llm_http_judge_from_config_with_cache_and_stats(tmp_path):
    with FakeServer(lambda i, body: Response(body=completion(body["messages"][-1]["content"][-9:]))) as fake:
        path = tmp_path / "judge.yaml"
        path.write_text(
            "judge:\n  kind: llm_http\n"
            f"  http: {{base_url: '{fake.base_url}', model: m, max_retries: 0}}\n"
            "  llm: {template: 'Steps: {steps}. Reply \\boxed{1}', system: null, max_tokens: 8}\n"
        )
        cfg = load_judge_config(path)
        judge = build_judge(cfg)
        verdicts = judge.judge([REQ, JudgeRequest("p", ["only"])])
        judge.judge([REQ])  # from the cache
    assert isinstance(judge, CachedJudge) and isinstance(judge.inner, LLMJudge)
    assert [v.status for v in verdicts] == ["ok", "invalid"] and verdicts[0].first_error == 1
    assert fake.requests[0]["messages"][0]["role"] == "user" and fake.requests[0]["max_tokens"] == 8
    stats = collect_stats(judge)
    assert stats["judge/calls"] == 2 and stats["judge/cache_hits"] == 1 and stats["judge/failures/invalid"] == 1
    with FakeServer(lambda i, body: Response(body=completion("\\boxed{0}"))) as fake:
        o_series = JudgeConfig(kind="llm_http", http={"base_url": fake.base_url, "model": "o4-mini", "max_tokens_param": "max_completion_tokens",
                                                       "extra_body": {"reasoning_effort": "low"}}, llm={"temperature": 1.0})
        assert build_judge(o_series).judge([REQ])[0].first_error == 0
    body = fake.requests[0]
    assert body["max_completion_tokens"] == 1024 and "max_tokens" not in body and body["reasoning_effort"] == "low"
    with pytest.raises(ValueError):
        JudgeConfig(kind="llm_http", http={"base_url": "x", "modle": "typo"})


def test_importing_judges_stays_light():
    code = ("import sys, sgpo.judges as j; assert 'httpx' not in sys.modules and 'transformers' not in sys.modules; "
            "j.LLMJudge, j.PRMJudge, j.build_judge; print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"

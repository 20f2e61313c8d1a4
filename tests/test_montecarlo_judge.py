"""The Monte-Carlo first-error estimator and the online rollout judge, with scripted completions."""

from __future__ import annotations

import math

import pytest
import torch

from sgpo.grading import GradingSettings, grade
from sgpo.judges.base import ERROR, INVALID, TIMEOUT, JudgeRequest
from sgpo.judges.config import JudgeConfig, build_judge
from sgpo.judges.data import read_labelled
from sgpo.judges.montecarlo import RolloutJudge, mc_first_errors, prefix_text, task_verifier
from sgpo.judges.stats import collect_stats
from sgpo.tasks.arith import ArithRuleJudge, ArithTask, Chain, apply


class MarkerSampler:
    """A policy whose completion reaches the answer ("RIGHT") exactly when the prefix holds no bad step."""

    max_new_tokens = 5

    def __init__(self, bad: dict[str, int], wins_per_probe: int | None = None):
        self.bad, self.calls, self.wins = bad, 0, wins_per_probe  # problem -> first bad step

    def complete(self, items, n):
        self.calls += 1
        out = []
        for request, prefix in items:
            k = prefix.count("\n")  # steps in the prefix
            right = k <= self.bad[request.problem]
            wins = n if self.wins is None else self.wins
            out.append(((["RIGHT"] * wins + ["WRONG"] * (n - wins)) if right else ["WRONG"] * n, 3 * n))
        return out


def marker_verify(request, text):
    return text.endswith("RIGHT")


def test_binary_search_finds_every_first_error_in_log_probes():
    requests, truth = [], []
    for K in range(1, 9):
        for e in range(K):
            requests.append(JudgeRequest(f"p{K}-{e}", [f"s{i}" for i in range(K)]))
            truth.append(e)
    sampler = MarkerSampler({r.problem: e for r, e in zip(requests, truth)})
    found = mc_first_errors(requests, sampler, marker_verify, n=2)
    assert [f.first_error for f in found] == truth
    for r, f in zip(requests, found):
        assert len(f.probes) <= math.ceil(math.log2(len(r.steps))) if len(r.steps) > 1 else not f.probes
        assert f.tokens == 6 * len(f.probes)
    assert sampler.calls == 3  # rounds = ceil(log2 8), every response probed in the same round


def test_correct_response_is_minus_one_without_sampling_and_min_success_counts():
    req = JudgeRequest("ok", ["a", "b RIGHT"])
    [est] = mc_first_errors([req], MarkerSampler({"ok": 9}), marker_verify)
    assert (est.first_error, est.probes, est.tokens) == (-1, [], 0)
    # Probes that win once in 4 are "right" with min_success=1 and "wrong" with min_success=2.
    req = JudgeRequest("p", ["a", "b", "c", "d"])
    lenient = mc_first_errors([req], MarkerSampler({"p": 3}, wins_per_probe=1), marker_verify, n=4, min_success=1)
    strict = mc_first_errors([req], MarkerSampler({"p": 3}, wins_per_probe=1), marker_verify, n=4, min_success=2)
    assert lenient[0].first_error == 3 and strict[0].first_error == 0


class ArithSampler:
    """A scripted policy for the arithmetic task: it reads the prefix's last value and finishes the
    chain correctly from it (so a wrong value is carried to a wrong answer, as the warmed-up policy does)."""

    max_new_tokens = 48

    def complete(self, items, n):
        out = []
        for request, prefix in items:
            chain = Chain.parse(request.problem)
            lines = [line for line in prefix.split("\n") if line]
            value = int(lines[-1].split("=")[-1]) if lines else chain.start
            text = []
            for op, b in chain.ops[len(lines):]:
                new = apply(value, op, b)
                text.append(f"{value} {op} {b} = {new}")
                value = new
            out.append((["\n".join(text + [f"Answer: {value}"])] * n, 10 * n))
        return out


def _slipped(problem, at: int, answer_only=False) -> list[str]:
    chain, value, lines = Chain.parse(problem.question), None, []
    value = chain.start
    for i, (op, b) in enumerate(chain.ops):
        new = apply(value, op, b) + (3 if i == at and not answer_only else 0)
        lines.append(f"{value} {op} {b} = {new}")
        value = new
    return lines + [f"Answer: {value + (1 if answer_only else 0)}"]


def test_estimate_matches_the_rule_judge_on_hand_made_arithmetic_slips():
    task = ArithTask()
    problems = task.problems("train", 6)
    requests = [JudgeRequest(p.question, _slipped(p, i % 4), p.reference, p.answer) for i, p in enumerate(problems)]
    requests.append(JudgeRequest(problems[0].question, _slipped(problems[0], 0, answer_only=True), None, problems[0].answer))
    found = mc_first_errors(requests, ArithSampler(), task_verifier(task))
    rule = ArithRuleJudge().judge(requests)
    assert [f.first_error for f in found] == [v.first_error for v in rule]
    assert found[-1].first_error == len(requests[-1].steps) - 1  # only the answer line is wrong


def test_budget_and_failures_give_counted_failed_verdicts_never_a_crash():
    reqs = [JudgeRequest("p", [f"s{i}" for i in range(8)]), JudgeRequest("q", [])]
    judge = RolloutJudge(marker_verify, n=2, max_tokens=2 * 5 * 2)  # two probes of n=2 at 5 tokens: 8 steps need 3
    judge.bind(MarkerSampler({"p": 5}))
    v = judge.judge(reqs)
    assert v[0].status == TIMEOUT and "budget" in v[0].raw and v[1].status == INVALID
    judge.max_tokens = None
    assert judge.judge(reqs[:1])[0].first_error == 5
    stats = collect_stats(judge)
    assert stats["judge/failures"] == 2 and stats["judge/sampled_tokens"] == 2 * 6 + 3 * 6
    # Unbound, or a sampler that raises: error verdicts.
    assert RolloutJudge(marker_verify).judge(reqs[:1])[0].status == ERROR

    class Broken:
        max_new_tokens = 4

        def complete(self, items, n):
            raise RuntimeError("out of memory")

    broken = RolloutJudge(marker_verify)
    broken.bind(Broken())
    assert broken.judge(reqs[:1])[0].status == ERROR


def test_rollout_judge_in_grading_counts_failures_and_grades_the_rest():
    task = ArithTask()
    problems = task.problems("train", 2)
    texts = ["\n".join(_slipped(problems[0], 1)), "", "\n".join(_slipped(problems[1], 2)), "garbage"]
    outcomes = torch.zeros(2, 2)
    judge = build_judge(JudgeConfig(kind="rollout", cache=False), task)
    assert isinstance(judge, RolloutJudge)
    judge.bind(ArithSampler())
    g = grade(problems, texts, outcomes, GradingSettings("sgpo", step_mode="line"), judge, log=lambda *a: None)
    assert g.verdicts[0].first_error == 1 and g.verdicts[2].first_error == 2
    assert not g.verdict_ok[0, 1] and g.advantages[0, 1] == 0  # no steps: a failure, advantage 0
    assert g.verdict_ok[0, 0] and g.verdict_ok[1, 0]
    with pytest.raises(ValueError, match="min_success"):
        build_judge(JudgeConfig(kind="rollout", rollout={"n": 2, "min_success": 3}), task)


def test_prefix_text_ends_where_the_next_step_starts():
    assert prefix_text(["a", "b", "c"], 0) == "" and prefix_text(["a", "b", "c"], 2) == "a\nb\n"


def test_mc_labels_load_in_train_judge(tmp_path):
    from sgpo.files.rows import write_jsonl
    from sgpo.judge_training.arith_data import corrupted_rows
    from sgpo.judge_training.mc_labels import arith_answer, mc_relabel
    from sgpo.judge_training.prm import file_data

    task = ArithTask()
    rows = corrupted_rows(40, "train", seed=3)
    judge = RolloutJudge(task_verifier(task))
    judge.bind(ArithSampler())
    labelled, cost = mc_relabel(rows, judge, arith_answer, log=lambda *a: None)
    assert cost["rows"] + cost["dropped"] == len(rows) and cost["sampled_tokens"] > 0
    path = write_jsonl(tmp_path / "labels_train.jsonl", (r.to_processbench() for r in labelled))
    back = read_labelled(path)
    assert [(r.steps, r.label) for r in back] == [(r.steps, r.label) for r in labelled]
    data = file_data([str(path)], 0, lambda *a: None)  # what `sgpo train-judge --data` reads
    assert len(data["train"]) + len(data["validation"]) == len(labelled)
    # A "slip_local" row ends at the right answer, so the outcome verifier calls it right (-1) where the
    # rule judge finds the slip: the labels are Monte-Carlo estimates (with their blind spot), not copies.
    assert any(a.label != b.label for a, b in zip(labelled, rows))


def test_trainer_binds_the_policy_and_logs_the_sampled_tokens(tmp_path):
    from testkit import tiny_overrides

    from sgpo.train.config import load_config
    from sgpo.train.trainer import Trainer

    cfg = load_config(None, tiny_overrides(tmp_path, "judge.kind=rollout", "judge.rollout.max_tokens_per_verdict=500",
                                           "train.steps=1", "train.bf16=false", "train.device=cpu",
                                           f"train.out_dir={tmp_path / 'run'}"))
    trainer = Trainer(cfg, log=lambda *a: None)
    inner = trainer.judge.inner  # the cache wraps the rollout judge
    assert isinstance(inner, RolloutJudge) and inner.sampler is not None
    before = torch.get_rng_state()
    items = [(JudgeRequest(p.question, ["1 + 1 = 2"]), "1 + 1 = 2\n") for p in trainer.train_problems[:3]]
    got = inner.sampler.complete(items, 2)
    assert torch.equal(before, torch.get_rng_state())  # judging leaves the training sampler's RNG alone
    assert len(got) == 3 and all(len(texts) == 2 for texts, _ in got)
    metrics = trainer.step()
    assert "judge/sampled_tokens" in metrics and metrics["judge/sampled_tokens"] >= 0
    assert metrics["sgpo/judge_failures"] <= metrics["sgpo/judged_responses"]
    assert inner.state_dict()["sampler"]["calls"] >= 1


@pytest.mark.parametrize("layout", ["numbered", "aligned"])
def test_trained_judge_layouts_put_each_step_before_its_separator(layout, tmp_path):
    from sgpo.judge_training.prm import SEPARATOR, build_model
    from sgpo.judges.prm import ALIGN_WIDTH, PRMJudge

    model, tok = build_model(None, 1, 16, 2, 0)
    judge = PRMJudge(model, tok, "sgpo", separator=SEPARATOR, use_reference=True, layout=layout)
    req = JudgeRequest("Start with 2. Add 2. Add 1.", ["2 + 2 = 4", "4 + 1 = 6", "Answer: 6", "extra"], "2 + 2 = 4\n4 + 1 = 5\nAnswer: 5")
    text = judge.text(req)
    chunks = text.split(SEPARATOR)[:-1]
    assert [c.endswith(s) for c, s in zip(chunks, req.steps)] == [True] * 4
    if layout == "aligned":  # reference line i, padded, right before step i; none for the fourth step
        assert chunks[1].endswith(f"{'4 + 1 = 5':<{ALIGN_WIDTH}}|4 + 1 = 6") and chunks[3] == f"{'':<{ALIGN_WIDTH}}|extra"
    else:
        assert "(1) 4 + 1 = 5\n" in text and chunks[1] == "(1) 4 + 1 = 6"
    assert len(judge.encode(req).positions) == 4
    with pytest.raises(ValueError, match="layout"):
        PRMJudge(model, tok, "sgpo", separator=SEPARATOR, layout="zigzag")


def test_train_judge_refuses_rollout_labels_without_a_policy(capsys):
    from sgpo.cli import main

    assert main(["train-judge", "--labels", "rollout"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config" in err[0]

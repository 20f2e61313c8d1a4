"""The math task: problem files, answer extraction and math-verify checks, the built-in set, training."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from testkit import jsonl, sgpo_cli

from sgpo.files.rows import DataError
from sgpo.judges.config import JudgeConfig, build_judge
from sgpo.judges.data import read_processbench
from sgpo.tasks.math_task import MathTask
from sgpo.tasks.problem_files import Fields, ProblemFileError, detect_fields, read_problems, read_problems_auto
from sgpo.tasks.verify import AnswerChecker, extract_answer, gold_answer, last_boxed
from sgpo.tasks.wordproblems import SPLIT_SIZES, builtin_file, generate
from sgpo.train.config import ConfigError, load_config
from sgpo.train.metrics import read_jsonl
from sgpo.train.runtime import task_for


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


ROWS = [
    {"q": "What is 2 + 3?", "a": "5", "sol": "2 + 3 = 5\n\\boxed{5}", "key": "p1"},
    {"q": "What is half of 1?", "a": "\\frac{1}{2}", "sol": "1 / 2 = 0.5", "key": "p2"},
]
FIELDS = Fields(problem="q", answer="a", reference="sol", id="key")


# -- problem files --------------------------------------------------------------------------------


def test_jsonl_json_and_parquet_read_the_same_problems_with_mapped_fields(tmp_path):
    import datasets

    jsonl(tmp_path / "p.jsonl", ROWS)
    (tmp_path / "p.json").write_text(json.dumps(ROWS, indent=1))
    datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "p.parquet"))
    read = [read_problems(tmp_path / f"p.{ext}", FIELDS) for ext in ("jsonl", "json", "parquet")]
    assert read[0] == read[1] == read[2]
    p = read[0][1]
    assert (p.id, p.question, p.answer, p.reference) == ("p2", "What is half of 1?", "\\frac{1}{2}", "1 / 2 = 0.5")


def test_ids_default_to_file_and_row_and_reference_can_be_off(tmp_path):
    path = jsonl(tmp_path / "set.jsonl", ROWS)
    problems = read_problems(path, Fields("q", "a", None, None))
    assert [p.id for p in problems] == ["set-1", "set-2"] and problems[0].reference == ""


def test_integer_answers_are_read_as_text(tmp_path):
    path = jsonl(tmp_path / "aime.jsonl", [{"problem": "p", "answer": 204}, {"problem": "q", "answer": 7.0}])
    assert [p.answer for p in read_problems(path, Fields(reference=None))] == ["204", "7"]


def test_missing_field_names_file_line_and_field(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(ROWS[0]), "", json.dumps({"q": "x", "sol": "s", "key": "k"})])
    with pytest.raises(ProblemFileError, match=r"d\.jsonl:3: field 'a' \(the answer\) is missing; this row has: q, sol, key"):
        read_problems(path, FIELDS)


def test_empty_answer_names_file_line_and_field(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [ROWS[0], {**ROWS[1], "a": "  "}])
    with pytest.raises(ProblemFileError, match=r"d\.jsonl:2: field 'a' \(the answer\) is empty"):
        read_problems(path, FIELDS)
    gsm = jsonl(tmp_path / "g.jsonl", [{"question": "x", "answer": "because #### "}])
    with pytest.raises(ProblemFileError, match=r"g\.jsonl:1: field 'answer' .*empty final answer"):
        read_problems(gsm, Fields("question", "answer", None))


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(ROWS[0]), '{"q": "x", "a": 1', json.dumps(ROWS[1])])
    with pytest.raises(ProblemFileError, match=r"d\.jsonl:2: not valid JSON"):
        read_problems(path, FIELDS)
    arr = tmp_path / "d.json"
    arr.write_text('[\n {"q": "x", "a": 1},\n {"q": "y" "a": 2}\n]')
    with pytest.raises(ProblemFileError, match=r"d\.json:3: not valid JSON"):
        read_problems(arr, FIELDS)
    rows = write_lines(tmp_path / "n.jsonl", [json.dumps(ROWS[0]), "[1, 2]"])
    with pytest.raises(ProblemFileError, match=r"n\.jsonl:2: a row must be a JSON object"):
        read_problems(rows, FIELDS)


def test_parquet_errors_name_the_row(tmp_path):
    import datasets

    path = tmp_path / "p.parquet"
    datasets.Dataset.from_list([ROWS[0], {**ROWS[1], "q": None}]).to_parquet(str(path))
    with pytest.raises(ProblemFileError, match=r"p\.parquet: row 2: field 'q' \(the problem\) is missing"):
        read_problems(path, FIELDS)


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(ProblemFileError, match="unsupported format '.csv'"):
        read_problems(write_lines(tmp_path / "d.csv", ["q,a"]), FIELDS)
    with pytest.raises(ProblemFileError, match="no such file"):
        read_problems(tmp_path / "absent.jsonl", FIELDS)
    with pytest.raises(ProblemFileError, match="no rows"):
        read_problems(write_lines(tmp_path / "empty.jsonl", [""]), FIELDS)


def test_problem_file_errors_are_config_errors_and_data_errors():
    assert issubclass(ProblemFileError, ConfigError) and issubclass(ProblemFileError, DataError)


def test_gsm8k_answers_take_what_follows_hashes_and_the_reasoning_is_the_reference(tmp_path):
    path = jsonl(tmp_path / "gsm8k.jsonl", [
        {"question": "Tom has 3 bags of 4 apples and eats 2. How many are left?",
         "answer": "Tom has 3*4=<<3*4=12>>12 apples.\nHe has 12-2=<<12-2=10>>10 left.\n#### 10"},
        {"question": "A big one?", "answer": "It is 1,000 + 234.\n#### 1,234"},
    ])
    problems, fields = read_problems_auto(path)
    assert (fields.problem, fields.answer, fields.reference) == ("question", "answer", None)
    assert [p.answer for p in problems] == ["10", "1234"]
    assert problems[0].reference == "Tom has 3*4=<<3*4=12>>12 apples.\nHe has 12-2=<<12-2=10>>10 left."


def test_field_detection_for_common_layouts():
    math500 = detect_fields(["problem", "solution", "answer", "subject", "level", "unique_id"])
    assert (math500.problem, math500.answer, math500.reference, math500.id) == ("problem", "answer", "solution", "unique_id")
    aime = detect_fields(["id", "problem", "answer"])
    assert (aime.problem, aime.answer, aime.reference, aime.id) == ("problem", "answer", None, "id")
    math_full = detect_fields(["problem", "solution", "level"])
    assert (math_full.answer, math_full.reference) == ("solution", None)
    given = detect_fields(["question", "answer"], problem="prompt")
    assert given.problem == "prompt"
    # A reference column that some rows lack is not picked up.
    assert detect_fields(["problem", "answer", "solution"], complete=["problem", "answer"]).reference is None


def test_math_solutions_without_answer_field_give_the_boxed_answer(tmp_path):
    path = jsonl(tmp_path / "math.jsonl", [{"problem": "p", "solution": "so $x = \\boxed{\\frac{1}{2}}$."}])
    problems, fields = read_problems_auto(path)
    assert fields.answer == "solution" and problems[0].answer == "\\frac{1}{2}"


def test_judge_data_reader_still_reports_file_and_line(tmp_path):
    path = write_lines(tmp_path / "pb.jsonl", ['{"problem": "p", "steps": ["a"], "label": -1}', "{oops"])
    with pytest.raises(DataError, match=r"pb\.jsonl:2: not valid JSON"):
        read_processbench(path)


# -- answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("response, methods, expected", [
    ("so \\boxed{42}.", ("boxed",), ("42", "boxed")),
    ("first \\boxed{1} then \\boxed{2}", ("boxed",), ("2", "boxed")),
    ("$\\boxed{\\frac{a}{b^{2}}}$", ("boxed",), ("\\frac{a}{b^{2}}", "boxed")),
    ("\\boxed 7 is it", ("boxed",), ("7", "boxed")),
    ("unclosed \\boxed{\\frac{1}{2}", ("boxed",), (None, None)),
    ("The answer is 12 apples.", ("boxed", "answer_line"), ("12 apples", "answer_line")),
    ("**Final answer:** $3/4$", ("boxed", "answer_line"), ("3/4", "answer_line")),
    ("steps\n#### 1,234", ("answer_line",), ("1,234", "answer_line")),
    ("Answer: \\boxed{5}.", ("answer_line",), ("5", "answer_line")),
    ("so 3 + 4 = 7, then 7 * 2 = 14 pens", ("boxed", "answer_line"), (None, None)),
    ("so 3 + 4 = 7, then 7 * 2 = 14 pens", ("boxed", "answer_line", "last_number"), ("14", "last_number")),
    ("total: 1,500 or -2.5", ("last_number",), ("-2.5", "last_number")),
    ("The answer is 3, no, \\boxed{4}", ("answer_line",), ("4", "answer_line")),
])
def test_extract_answer(response, methods, expected):
    assert extract_answer(response, methods) == expected


def test_gold_answers():
    assert gold_answer("blah\n#### 72") == "72"
    assert gold_answer("The answer is $\\boxed{\\dfrac{14}{3}}$.") == "\\dfrac{14}{3}"
    assert gold_answer(" 204 ") == "204"
    assert last_boxed("\\fbox{9}") == "9"


@pytest.fixture(scope="module")
def checker():
    c = AnswerChecker(timeout_s=10.0)
    yield c
    c.close()


@pytest.mark.parametrize("gold, response, correct", [
    ("42", "so \\boxed{42}", True),
    ("42", "so \\boxed{43}", False),
    ("\\frac{1}{2}", "\\boxed{0.5}", True),
    ("\\frac{1}{2}", "\\boxed{1/2}", True),
    ("\\frac{14}{3}", "\\boxed{\\dfrac{14}{3}}", True),
    ("1/2", "The answer is $\\frac{2}{4}$.", True),
    ("1000", "\\boxed{1,000}", True),
    ("3\\sqrt{2}", "\\boxed{\\sqrt{18}}", True),
    ("(3, 5)", "\\boxed{(3,5)}", True),
    ("10", "\\boxed{10 \\text{ apples}}", True),
    ("2", "\\boxed{x^2}", False),
])
def test_math_verify_equivalence(checker, gold, response, correct):
    assert checker.check(gold, response).correct is correct


def test_unparsable_and_missing_answers_are_counted_not_raised():
    c = AnswerChecker(timeout_s=10.0)
    try:
        bad = c.check("42", "\\boxed{\\frac{}{}}")
        none = c.check("42", "I do not know.")
        assert (bad.correct, bad.status) == (False, "unparsable")
        assert (none.correct, none.status, none.answer) == (False, "no_answer", None)
        assert c.stats == {"unparsable": 1, "no_answer": 1}
    finally:
        c.close()


def test_a_check_that_hangs_times_out_and_the_next_one_works():
    c = AnswerChecker(timeout_s=1.0)
    try:
        start = time.perf_counter()
        slow = c.check("1", "\\boxed{9^{9^{9^{9}}}}")  # sympy would run for minutes
        assert slow.status == "timeout" and not slow.correct
        assert time.perf_counter() - start < 8
        assert c.check("\\frac{1}{2}", "\\boxed{0.5}").status == "correct"
        assert c.stats == {"timeout": 1, "correct": 1}
    finally:
        c.close()


def test_checks_from_worker_threads(checker):
    results: dict[int, bool] = {}

    def work(i: int):
        results[i] = checker.check(f"\\frac{{{i}}}{{2}}", f"\\boxed{{{i / 2}}}").correct

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {1: True, 2: True, 3: True, 4: True}


def _check_in_worker(args):
    gold, response, timeout = args
    c = AnswerChecker(timeout_s=timeout)
    return c.check(gold, response).status


def test_checks_inside_a_daemonic_worker_process():
    # multiprocessing forbids daemonic workers to have children; the helper is a plain subprocess.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        statuses = pool.map(_check_in_worker, [("\\frac{1}{2}", "\\boxed{0.5}", 30.0), ("1", "\\boxed{9^{9^{9^{9}}}}", 1.0)])
    assert statuses == ["correct", "timeout"]


def test_checker_survives_pickling(checker):
    import pickle

    copy = pickle.loads(pickle.dumps(checker))
    assert copy.check("4", "\\boxed{2+2}").correct


# -- the built-in set -------------------------------------------------------------------------------


def test_builtin_set_is_what_the_generator_makes_and_deterministic():
    rows = generate()
    assert rows == generate()
    for split, n in SPLIT_SIZES.items():
        shipped = [json.loads(line) for line in builtin_file(split).read_text().splitlines()]
        assert shipped == rows[split] and len(shipped) == n
    assert generate(seed=1)["test"] != rows["test"]


def test_builtin_splits_are_disjoint_and_solutions_are_consistent():
    rows = generate()
    questions = {split: {r["problem"] for r in split_rows} for split, split_rows in rows.items()}
    assert not questions["train"] & questions["test"]
    assert not questions["train"] & questions["validation"]
    assert not questions["validation"] & questions["test"]
    c = AnswerChecker()
    try:
        for r in rows["test"]:
            lines = r["solution"].splitlines()
            assert 2 <= len(lines) <= 4 and lines[-1] == f"The answer is \\boxed{{{r['answer']}}}."
            assert c.check(r["answer"], r["solution"]).correct
            assert int(r["answer"]) >= 0
    finally:
        c.close()


# -- the task ---------------------------------------------------------------------------------------


def test_make_task_math_defaults_to_the_builtin_set():
    task = task_for(load_config(None, ["task.name=math"]))
    assert isinstance(task, MathTask) and task.step_mode == "line" and "\\boxed{}" in task.system_prompt
    train, val, test = task.problems("train", 10_000), task.problems("validation", 10), task.problems("test", 10_000)
    assert (len(train), len(val), len(test)) == (400, 10, 100)
    assert train[0].id == "wp-train-0000" and train[0].reference.endswith(f"\\boxed{{{train[0].answer}}}.")
    assert task.verify(f"\\boxed{{{test[0].answer}}}", test[0]) == 1.0
    assert task.verify("\\boxed{-1}", test[0]) == 0.0
    assert task.verify_stats() == {"correct": 1, "wrong": 1}
    task.close()


def test_make_task_math_reads_configured_files(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", ROWS)
    held = jsonl(tmp_path / "held.jsonl", [{"q": "1+1?", "a": "2", "sol": "1 + 1 = 2", "key": "h1"}])
    cfg = load_config(None, ["task.name=math", f"data.train_files=[{train}]", f"data.eval_files=[{held}]",
                             "data.problem_field=q", "data.answer_field=a", "data.reference_field=sol", "data.id_field=key",
                             "task.answer_extraction=[last_number]"])
    task = task_for(cfg)
    assert [p.id for p in task.problems("train", 5)] == ["p1", "p2"]
    assert [p.id for p in task.problems("validation", 5)] == ["h1"]
    assert task.verify("I get 1 + 1 = 2", task.problems("validation", 1)[0]) == 1.0
    task.close()


def test_rule_judge_for_math_is_a_config_error():
    with pytest.raises(ConfigError, match="judge.kind=rule .* task.name=math has none"):
        build_judge(JudgeConfig(kind="rule"), MathTask())


@pytest.mark.slow
def test_cli_train_math_with_rule_judge_and_bad_data_exit_2(tmp_path):
    proc = sgpo_cli("train", "task.name=math", f"train.out_dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and "judge.kind=rule" in proc.stderr and "Traceback" not in proc.stderr
    bad = write_lines(tmp_path / "bad.jsonl", [json.dumps({"problem": "p", "answer": "1"}), json.dumps({"problem": "q"})])
    proc = sgpo_cli("train", "task.name=math", "algorithm.method=grpo", f"data.train_files=[{bad}]",
                    "data.reference_field=null", f"train.out_dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bad.jsonl:2: field 'answer' (the answer) is missing" in proc.stderr


@pytest.mark.slow
def test_short_math_training_run_completes(tmp_path):
    run = tmp_path / "run"
    proc = sgpo_cli(
        "train", "task.name=math", "algorithm.method=grpo", "task.n_train=16", "task.n_eval=4",
        "model.n_layers=1", "model.d_model=32", "model.n_heads=2",
        "rollout.group_size=2", "rollout.prompts_per_step=2", "rollout.max_new_tokens=16",
        "optim.mini_batch_size=4", "train.steps=2", "train.eval_every=1", "train.eval_k=2", "train.progress=false",
        f"train.out_dir={run}", f"warmup.cache_dir={tmp_path / 'warm'}", "warmup.steps=3", "warmup.batch_size=4",
    )
    assert proc.returncode == 0, proc.stderr
    # The warm-up trained on the math references (arithmetic ones would not parse) and was cached.
    assert "warm-up: 3 supervised steps" in proc.stdout + proc.stderr
    assert any((tmp_path / "warm").iterdir())
    start, *metrics = read_jsonl(run / "metrics.jsonl")
    assert start["step"] == 0 and [m["step"] for m in metrics] == [1, 2] and all("eval/accuracy" in m for m in metrics)
    # Each step logs its own answer checks by status: 2 prompts x G=2 responses, evaluation not included.
    for m in metrics:
        checks = {k: v for k, v in m.items() if k.startswith("verify/")}
        assert sum(checks.values()) == 4, checks
        assert m.get("verify/correct", 0) == round(m["accuracy/train"] * 4)
    samples = read_jsonl(run / "samples.jsonl")
    assert samples and all(s["outcome"] in (0, 0.0, 1, 1.0) for s in samples)
    train = {p.question for p in MathTask().problems("train", 16)}
    assert {s["prompt"] for s in samples} <= train

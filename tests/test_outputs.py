"""Every --out of every command: a file where a directory goes (or the reverse) or an earlier output
is refused before any work, in one line, and leaves what was there byte for byte; --overwrite
replaces it; files appear whole or not at all. Models named on the command line or in a config are
checked up front."""

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures_server import FakeServer, Response, completion  # noqa: E402
from testkit import tiny_overrides  # noqa: E402

from sgpo.cli import main  # noqa: E402


def snapshot(root: Path) -> dict[str, str]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def refused(capsys, argv: list[str], prefix: str, words: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in "\n".join(err) and len(err) == 1, err
    assert err[0].startswith(prefix) and words in err[0], err[0]
    return err[0]


@pytest.fixture
def a_dir(tmp_path):
    d = tmp_path / "existing"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    return d


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "existing.txt"
    f.write_text("an unrelated file\n")
    return f


def test_judge_refuses_a_directory_before_asking_the_judge(responses, a_dir, tmp_path, capsys):
    with FakeServer(lambda i, body: Response(body=completion("\\boxed{-1}"))) as server:
        cfg = tmp_path / "judge.yaml"
        cfg.write_text(f"kind: llm_http\nhttp: {{base_url: '{server.base_url}', model: m}}\n")
        before = snapshot(a_dir)
        refused(capsys, ["judge", str(responses), "--judge", str(cfg), "--out", str(a_dir)], "sgpo judge: error: --out",
                "is a directory; this command writes a file there")
        assert server.requests == []  # no verdict was paid for and then lost
    assert snapshot(a_dir) == before


def test_judge_replaces_an_earlier_file_only_with_overwrite(responses, a_file, capsys):
    before = snapshot(a_file)
    refused(capsys, ["judge", str(responses), "--out", str(a_file)], "sgpo judge: error:", "exists; pass --overwrite to replace it")
    assert snapshot(a_file) == before
    assert main(["judge", str(responses), "--out", str(a_file), "--overwrite"]) == 0
    assert json.loads(a_file.read_text())["first_error"] == -1
    assert [p.name for p in a_file.parent.iterdir() if ".tmp-" in p.name] == []


@pytest.mark.parametrize("kind", ["file", "dir", "summary"])
def test_eval_refuses_what_is_at_out_before_loading_anything(tmp_path, a_file, a_dir, capsys, kind):
    out = {"file": a_file, "dir": a_dir, "summary": tmp_path / "results.jsonl"}[kind]
    if kind == "summary":  # the companion file is an output too
        (tmp_path / "results.summary.json").write_text("{}")
    before = snapshot(tmp_path)
    words = "is a directory" if kind == "dir" else "exists; pass --overwrite"
    refused(capsys, ["eval", "--model", str(tmp_path / "no-model"), "--out", str(out)], "sgpo eval: error: --out", words)
    assert snapshot(tmp_path) == before


def test_compare_refuses_an_earlier_comparison_and_a_file(tmp_path, a_file, capsys):
    out = tmp_path / "cmp"
    (out / "plots").mkdir(parents=True)
    (out / "summary.json").write_text('{"earlier": true}')
    before = snapshot(out)
    refused(capsys, ["compare", "--out", str(out), *tiny_overrides(tmp_path, "train.steps=1")], "sgpo compare: error:",
            f"{out} already holds a run (summary.json, plots); pass --overwrite to replace it")
    assert snapshot(out) == before
    refused(capsys, ["compare", "--out", str(a_file), *tiny_overrides(tmp_path, "train.steps=1")], "sgpo compare: error:",
            "is a file")
    assert a_file.read_text() == "an unrelated file\n"


def test_rollout_refuses_a_directory_and_an_earlier_file(tmp_path, a_dir, a_file, capsys):
    for out, words in ((a_dir, "is a directory"), (a_file, "exists; pass --overwrite")):
        before = snapshot(out)
        refused(capsys, ["rollout", "--out", str(out), *tiny_overrides(tmp_path)], "sgpo rollout: error: --out", words)
        assert snapshot(out) == before
    assert not (tmp_path / "warmup").exists()  # refused before the warm-up


def test_analyze_and_judge_eval_refuse_earlier_reports(tmp_path, a_file, capsys):
    rollouts = tmp_path / "r.jsonl"  # never read: the output is checked first
    rollouts.write_text("")
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("earlier")
    for argv, prefix in ((["analyze", str(rollouts)], "sgpo analyze"), (["judge-eval", str(rollouts), "--judge", "none"], "sgpo judge-eval")):
        refused(capsys, [*argv, "--out", str(a_file)], f"{prefix}: error: --out", "is a file; this command writes a directory")
        assert a_file.read_text() == "an unrelated file\n"
    before = snapshot(report)
    refused(capsys, ["analyze", str(rollouts), "--out", str(report)], "sgpo analyze: error:", "already holds report.md")
    (report / "results.json").write_text("{}")
    refused(capsys, ["judge-eval", str(rollouts), "--judge", "none", "--out", str(report)], "sgpo judge-eval: error:",
            "already holds results.json")
    assert snapshot(report) == {**before, **snapshot(report / "results.json")}


@pytest.mark.parametrize("argv, words", [
    (["theory"], "is a file"),
    (["data", "verl", "--task", "arith"], "is a file"),
    (["data", "wordproblems"], "is a file"),
    (["models", "prepare", "smollm2"], "is a file"),
    (["train-judge", "--steps", "1"], "is a file"),
    (["sft", "warmup.steps=1"], "is a file"),
])
def test_every_other_out_refuses_a_file_where_its_directory_goes(a_file, capsys, argv, words):
    cmd = " ".join(argv[:2] if argv[0] in ("data", "models") else argv[:1])
    refused(capsys, [*argv[:3 if argv[0] == "models" else len(argv)], "--out", str(a_file),
                     *argv[3 if argv[0] == "models" else len(argv):]], f"sgpo {cmd.split()[0]}: error: --out", words)
    assert a_file.read_text() == "an unrelated file\n"


@pytest.mark.parametrize("argv, name", [
    (["theory"], "curves.json"),
    (["data", "verl", "--task", "arith", "--train", "2", "--val", "2"], "train.parquet"),
    (["data", "wordproblems"], "wordproblems_train.jsonl"),
    (["train-judge", "--steps", "1"], "notes.txt"),
    (["sft", "warmup.steps=1"], "notes.txt"),
])
def test_no_directory_output_is_replaced_without_overwrite(a_dir, capsys, argv, name):
    (a_dir / name).write_text("earlier")
    before = snapshot(a_dir)
    refused(capsys, [*argv, "--out", str(a_dir)], f"sgpo {argv[0]}: error: --out", f"already holds {'' if name == 'notes.txt' else ''}")
    assert snapshot(a_dir) == before


def test_data_verl_overwrite_replaces_whole_files(a_dir, capsys):
    assert main(["data", "verl", "--task", "arith", "--train", "3", "--val", "2", "--out", str(a_dir)]) == 0
    first = snapshot(a_dir)
    assert main(["data", "verl", "--task", "arith", "--train", "4", "--val", "2", "--out", str(a_dir)]) == 2
    assert snapshot(a_dir) == first
    assert main(["data", "verl", "--task", "arith", "--train", "4", "--val", "2", "--out", str(a_dir), "--overwrite"]) == 0
    assert snapshot(a_dir)[str(a_dir / "train.parquet")] != first[str(a_dir / "train.parquet")]
    assert sorted(p.name for p in a_dir.iterdir()) == ["notes.txt", "train.parquet", "val.parquet"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from sgpo.files.rows import write_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_text('{"old": 1}\n')

    def rows():
        yield {"new": 1}
        raise RuntimeError("the producer died mid-file")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == '{"old": 1}\n' and [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


# -- model directories that are not models ---------------------------------------------------------


def _broken_config(d: Path) -> Path:
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama",\n  "hidden_size": 32,,\n}')
    return d


def _no_weights(d: Path) -> Path:
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama"}')
    (d / "tokenizer.json").write_text("{}")
    return d


@pytest.mark.parametrize("make, words", [
    (_broken_config, "config.json:2: not a model config (not valid JSON"),
    (_no_weights, "has no weights"),
])
@pytest.mark.parametrize("command", ["train", "eval", "train-judge"])
def test_a_model_directory_that_is_not_a_model_is_one_line_naming_it(tmp_path, capsys, make, words, command):
    model = make(tmp_path / "model")
    before = snapshot(model)
    argv = {
        "train": ["train", *tiny_overrides(tmp_path, f"model.path={model}", f"train.out_dir={tmp_path / 'run'}")],
        "eval": ["eval", "--model", str(model)],
        "train-judge": ["train-judge", "--base-model", str(model), "--out", str(tmp_path / "judge")],
    }[command]
    line = refused(capsys, argv, f"sgpo {command}: error: ", words)
    assert str(model) in line
    assert snapshot(model) == before and not (tmp_path / "run").exists() and not (tmp_path / "judge").exists()


def test_a_base_model_that_does_not_exist_is_refused_before_any_data_is_made(tmp_path, capsys):
    refused(capsys, ["train-judge", "--base-model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "judge")],
            "sgpo train-judge: error: --base-model=", "nowhere")


def test_a_rollouts_file_is_replaced_only_by_a_complete_one(tmp_path):
    from testkit import HEADER, group, write_file

    from sgpo.rollouts.writer import RolloutsWriter

    path = write_file(tmp_path / "r.jsonl", [group(0)])
    before = path.read_bytes()
    with pytest.raises(RuntimeError), RolloutsWriter(path, HEADER, overwrite=True) as w:
        w.write_group(group(1))
        raise RuntimeError("sampling died")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]
    with RolloutsWriter(path, HEADER, overwrite=True) as w:
        w.write_group(group(2))
    assert path.read_bytes() != before and [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]

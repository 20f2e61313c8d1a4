"""Bad input on the command line: one line on stderr, `sgpo COMMAND: error: ...` or argparse's, exit 2."""

import pytest

from sgpo.cli import main


def one_line_error(capsys, prefix: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(prefix), err
    return err[-1]


@pytest.fixture
def labelled(tmp_path):
    f = tmp_path / "pb.jsonl"
    f.write_text('{"id": 1, "problem": "p", "steps": ["a"], "label": -1, "final_answer_correct": true}\n')
    return f


@pytest.mark.parametrize("args, words", [
    (["--limit", "-3"], "argument --limit: must be a positive integer, got -3"),
    (["--limit", "0"], "argument --limit: must be a positive integer, got 0"),
    (["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
    (["--batch-size", "x"], "argument --batch-size: must be a positive integer, got 'x'"),
])
def test_judge_eval_counts(labelled, capsys, args, words):
    with pytest.raises(SystemExit) as e:
        main(["judge-eval", str(labelled), "--judge", "none", *args])
    assert e.value.code == 2
    assert words in one_line_error(capsys, "sgpo judge-eval: error:")


def test_eval_refuses_a_negative_limit(capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "nowhere", "--limit", "-1"])
    assert e.value.code == 2
    assert "argument --limit: must be a positive integer, got -1" in one_line_error(capsys, "sgpo eval: error:")


def test_judge_refuses_zero_steps_and_empty_files(tmp_path, capsys):
    f = tmp_path / "r.jsonl"
    f.write_text('{"problem": "Start with 1.", "response": "1 + 1 = 2"}\n')
    for flag in ("--max-steps", "--batch-size"):
        with pytest.raises(SystemExit) as e:
            main(["judge", str(f), flag, "0"])
        assert e.value.code == 2
        one_line_error(capsys, "sgpo judge: error: argument")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["judge", str(empty)]) == 2
    assert one_line_error(capsys, "sgpo judge: error:") == f"sgpo judge: error: {empty}: no responses to judge"


def test_cuda_without_a_gpu_is_a_config_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: train.device=cuda is valid here")
    assert main(["train", "train.device=cuda", "train.steps=1"]) == 2
    assert "train.device=cuda but no CUDA device is available" in one_line_error(capsys, "sgpo train: error:")

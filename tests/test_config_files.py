"""Config files read the same everywhere (sgpo.files.config): a judge config given to `sgpo judge` or
`sgpo judge-eval`, or a training config, that YAML cannot parse is one line with the file and line;
an unknown key names the file, the dotted key and the valid keys, not pydantic's multi-line dump."""

import pytest

from sgpo.cli import main
from sgpo.errors import ConfigError
from sgpo.judges.config import load_judge_config


@pytest.fixture
def labelled(tmp_path):
    f = tmp_path / "pb.jsonl"
    f.write_text('{"id": 1, "problem": "p", "steps": ["a"], "label": -1, "final_answer_correct": true}\n')
    return f


BAD = {
    "flow": ("kind: llm_http\nhttp: {base_url: 'http://127.0.0.1:1/v1',\n  model: m\n", ":4:1: not valid YAML: "),
    "tab": ("kind: rule\n\tcache: true\n", ":2:1: not valid YAML: found a tab character"),
    "unknown": ("kind: llm_http\nhttp: {base_url: 'http://127.0.0.1:1/v1', bogus: 1}\n",
                "): unknown key 'http.bogus'; valid keys here: base_url, model, api_key_env, "),
    "unknown-in-train-config": ("algorithm: {method: sgpo}\njudge: {kind: rule, nope: 1}\n",
                                "): unknown key 'judge.nope'; valid keys here: kind, llm, http, "),
    "bad-value": ("kind: oracle\n", "): kind: Input should be 'rule', 'llm_http', 'llm_local', 'prm' or 'rollout' (got 'oracle')"),
    "not-a-mapping": ("- kind: rule\n", ": the top level must be a mapping of keys, got list"),
}


def _one_line(capsys, prefix: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(prefix), err[0]
    return err[0]


@pytest.mark.parametrize("name", BAD)
def test_sgpo_judge_names_the_file_and_where(tmp_path, responses, capsys, name):
    text, words = BAD[name]
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(text)
    out = tmp_path / "v.jsonl"
    assert main(["judge", str(responses), "--judge", str(cfg), "--out", str(out)]) == 2
    line = _one_line(capsys, "sgpo judge: error: ")
    assert str(cfg) in line and words in line
    assert not out.exists() and cfg.read_text() == text


@pytest.mark.parametrize("name", ["flow", "unknown"])
def test_sgpo_judge_eval_names_the_file_and_where(tmp_path, labelled, capsys, name):
    text, words = BAD[name]
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(text)
    assert main(["judge-eval", str(labelled), "--judge", "none", "--judge", str(cfg)]) == 2
    line = _one_line(capsys, "sgpo judge-eval: error: ")
    assert str(cfg) in line and words in line


def test_a_training_config_reads_the_same_way(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("train:\n  steps: 2\n  bogus: [1,\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert _one_line(capsys, f"sgpo train: error: {cfg}:4:1: not valid YAML: ")
    cfg.write_text("train: {steps: 2, bogus: 1}\nrollout: {group_size: 1}\n")
    assert main(["train", "--config", str(cfg)]) == 2
    line = _one_line(capsys, f"sgpo train: error: invalid configuration ({cfg}): ")
    assert "unknown key 'train.bogus'; valid keys here: mode, steps," in line
    assert "rollout.group_size: Input should be greater than or equal to 2 (got 1); unknown key 'train.bogus'" in line


def test_the_library_raises_one_config_error(tmp_path):
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(BAD["unknown"][0])
    with pytest.raises(ConfigError) as e:
        load_judge_config(cfg)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="config file not found"):
        load_judge_config(tmp_path / "missing.yaml")

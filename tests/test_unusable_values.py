"""Values that cannot be trained on (issue 18 §2): NaN, infinity and sizes that would exhaust the
machine are config errors, one line naming the key, exit 2, before any work; the same for every
command's numeric flags."""

from __future__ import annotations

import hashlib
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from sgpo.cli import main
from sgpo.errors import ConfigError
from sgpo.judges.config import JudgeConfig, load_judge_config
from sgpo.train.config import Config, load_config


def float_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted keys of every float option (``float`` or ``float | None``) of a config model."""
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += float_keys(ann, f"{prefix}{name}.")
        elif ann is float or float in typing.get_args(ann):
            keys.append(prefix + name)
    return keys


FLOAT_KEYS = float_keys(Config)


def test_the_sweep_sees_the_float_options():
    assert {"algorithm.beta", "algorithm.gamma", "rollout.temperature", "optim.lr", "judge.prm.threshold",
            "judge.http.timeout_s", "judge.noise_p"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", ".nan", ".inf"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_no_float_option_takes_nan_or_infinity(key, value):
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"{key}={value}"])
    msg = str(e.value)
    assert "\n" not in msg and f"{key}: " in msg and "finite" in msg, msg


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("key", float_keys(JudgeConfig))
def test_judge_config_files_refuse_nan_and_infinity(tmp_path, key, value):
    f = tmp_path / "judge.yaml"
    section, _, leaf = key.rpartition(".")
    f.write_text(f"{section}:\n  {leaf}: {value}\n" if section else f"{leaf}: {value}\n")
    with pytest.raises(ValueError, match="finite"):
        load_judge_config(f)


@pytest.mark.parametrize("override, words", [
    ("rollout.prompts_per_step=1e20", "rollout.prompts_per_step"),
    ("rollout.prompts_per_step=1e7", "less than or equal to 65536"),
    ("rollout.group_size=100000", "rollout.group_size: Input should be less than or equal to 1024"),
    ("rollout.max_new_tokens=1e9", "rollout.max_new_tokens"),
    ("task.n_train=1e12", "task.n_train"),
    ("optim.mini_batch_size=1e12", "optim.mini_batch_size"),
    ("model.d_model=1e6", "model.d_model"),
    ("judge.llm.samples=1e6", "judge.llm.samples"),
    ("judge.http.concurrency=1e9", "judge.http.concurrency"),
    ("judge.http.timeout_s=1e300", "judge.http.timeout_s"),
    ("train.seed=-1", "train.seed"),
    ("train.seed=1e30", "train.seed"),
    ("judge.noise_seed=4294967296", "judge.noise_seed"),
])
def test_sizes_that_would_exhaust_the_machine_are_refused(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides, words", [
    (["model.n_heads=3"], "model.n_heads: must divide d_model=128"),
    (["model.d_model=30"], "model.n_heads: must divide d_model=30"),
    (["model.d_model=30", "model.n_heads=2"], "model.n_heads: gives heads of odd width 15"),
])
def test_heads_must_split_the_width(overrides, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, overrides)


def test_heads_of_a_model_from_a_path_are_not_the_tiny_models():
    assert load_config(None, ["model.path=/somewhere", "model.d_model=30"]).model.d_model == 30


def test_defaults_and_packaged_configs_still_load():
    load_config()
    for f in sorted((Path(__file__).resolve().parent.parent / "src" / "sgpo" / "configs").glob("*.yaml")):
        load_config(f)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(capsys, prefix: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(prefix), err
    return err[-1]


@pytest.mark.parametrize("override, key", [
    ("algorithm.beta=nan", "algorithm.beta"),
    ("algorithm.gamma=inf", "algorithm.gamma"),
    ("rollout.temperature=inf", "rollout.temperature"),
    ("rollout.prompts_per_step=1e20", "rollout.prompts_per_step"),
    ("model.n_heads=3", "model.n_heads"),
])
def test_train_refuses_in_one_line_and_touches_nothing(tmp_path, capsys, override, key):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine\n")
    before = _snapshot(tmp_path)
    assert main(["train", f"train.out_dir={run}", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sgpo train: error: invalid configuration") and f"{key}: " in err[0], err
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("argv, words", [
    (["theory", "-G", "100000000"], "argument --group-size/-G: must be an integer in [2, 100000]"),
    (["theory", "-G", "1000"], "-G 1000 with --steps-k 2 needs tensors of"),
    (["theory", "-G", "200", "--steps-k", "1", "--theta0", "-3"], "-G 200 with method random needs tensors of"),
    (["theory", "--mc-groups", "100000000"], "--mc-groups 100000000 with -G 8 needs tensors of"),
    (["theory", "--theta0", "nan"], "argument --theta0: must be a finite number, got 'nan'"),
    (["theory", "--theta0", "-3", "inf"], "argument --theta0: must be a finite number, got 'inf'"),
    (["theory", "--lr", "inf"], "argument --lr: must be a finite number > 0, got 'inf'"),
    (["theory", "--lr", "0"], "argument --lr: must be a finite number > 0, got '0'"),
    (["theory", "--mapping-param", "beta=nan"], "--mapping-param 'beta=nan': the value must be a finite number"),
    (["theory", "--levels", "nan"], "argument --levels: must be a finite number in [0, 1]"),
    (["theory", "--iters", "1e9"], "argument --iters: must be an integer in [1, 1000000]"),
    (["theory", "--steps-k", "1000"], "argument --steps-k: must be an integer in [1, 64]"),
    (["analyze", "r.jsonl", "--beta", "nan"], "argument --beta: must be a finite number, got 'nan'"),
    (["analyze", "r.jsonl", "--gamma=-inf"], "argument --gamma: must be a finite number, got '-inf'"),
    (["analyze", "r.jsonl", "--linear-scale", "nan"], "argument --linear-scale: must be a finite number"),
    (["train-judge", "--lr", "nan"], "argument --lr: must be a finite number > 0, got 'nan'"),
    (["train-judge", "--lr", "inf"], "argument --lr: must be a finite number > 0, got 'inf'"),
    (["train-judge", "--noise-p", "nan"], "argument --noise-p: must be a finite number in [0, 1]"),
    (["train-judge", "--n-train", "1e20"], "argument --n-train: must be an integer in [1, 10000000]"),
    (["train-judge", "--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295]"),
    (["train-judge", "--base-model", "tiny", "--d-model", "30", "--heads", "4"], "--heads 4 must divide --d-model 30"),
    (["eval", "--model", "m", "--temperature", "nan"], "argument --temperature: must be a finite number >= 0"),
    (["eval", "--model", "m", "--top-p", "inf"], "argument --top-p: must be a finite number in (0, 1]"),
    (["eval", "--model", "m", "--timeout", "inf"], "argument --timeout: must be a finite number in (0, 3600]"),
    (["compare", "--seeds", "1", "nan"], "argument --seeds: must be an integer in [0, 4294967295], got 'nan'"),
    (["compare", "--target", "nan"], "argument --target: must be a finite number in [0, 1]"),
    (["rollout", "--out", "r.jsonl", "--problems", "100000000000"], "argument --problems: must be an integer in [1, 10000000]"),
    (["rollout", "--out", "r.jsonl", "--batch-prompts", "1e20"], "argument --batch-prompts: must be an integer in [1, 65536]"),
    (["data", "verl", "--task", "arith", "--out", "d", "--train", "100000000000"], "argument --train: must be an integer in"),
    (["data", "verl", "--task", "arith", "--out", "d", "--seed", "-5"], "argument --seed: must be an integer in [0, 4294967295]"),
])
def test_numeric_flags_refuse_nan_infinity_and_absurd_sizes(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine\n")
    before = _snapshot(tmp_path)
    try:
        code = main(argv + (["--out", str(tmp_path / "out")] if argv[0] == "theory" else []))
    except SystemExit as e:  # argparse's own exit for a bad flag
        code = e.code
    assert code == 2
    line = one_line(capsys, f"sgpo {argv[0]}")  # `sgpo data verl: error: ...` for a subcommand
    assert "error: " in line and words in line
    assert _snapshot(tmp_path) == before

"""A run directory holds one run: a fresh run refuses an old one, resume refuses a changed config."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from testkit import sgpo_cli, tiny_overrides  # noqa: E402

from sgpo.cli import main  # noqa: E402


def last_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rundir")
    run = tmp / "run"
    proc = sgpo_cli("train", *tiny_overrides(tmp, "train.steps=4", "train.save_every=2", "train.eval_every=0",
                                             f"train.out_dir={run}"))
    assert proc.returncode == 0, proc.stderr
    return tmp, run


@pytest.mark.slow
def test_a_fresh_run_refuses_a_directory_holding_a_run(old_run):
    tmp, run = old_run
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    proc = sgpo_cli("train", *tiny_overrides(tmp, "train.steps=1", "train.eval_every=0", f"train.out_dir={run}"))
    assert proc.returncode == 2
    line = last_line(proc)
    assert line.startswith(f"sgpo train: error: {run} already holds a run (config.yaml, metrics.jsonl")
    assert "--resume" in line and "--overwrite" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before  # nothing lost


@pytest.mark.slow
def test_overwrite_replaces_the_old_run_entirely(tmp_path):
    run = tmp_path / "run"
    assert sgpo_cli("train", *tiny_overrides(tmp_path, "train.steps=4", "train.save_every=2", "train.eval_every=0",
                                             f"train.out_dir={run}")).returncode == 0
    proc = sgpo_cli("train", "--overwrite", *tiny_overrides(tmp_path, "train.steps=1", "train.eval_every=0",
                                                           f"train.out_dir={run}"))
    assert proc.returncode == 0, proc.stderr
    # The old step_2 and step_4 checkpoints are gone, so --resume cannot pick up the older run's weights.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_1"]


@pytest.mark.slow
def test_resume_refuses_a_config_changed_since_the_checkpoint(old_run, tmp_path):
    _, run = old_run
    changed = tmp_path / "changed"
    import shutil

    shutil.copytree(run, changed)
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(changed / "config.yaml")
    cfg.optim.lr = 0.123
    OmegaConf.save(cfg, changed / "config.yaml")
    proc = sgpo_cli("train", "--resume", str(changed))
    assert proc.returncode == 2
    assert "was saved by a run with another config (optim.lr differ" in last_line(proc)


@pytest.mark.slow
def test_zero_steps_does_nothing_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = sgpo_cli("train", *tiny_overrides(tmp_path, "train.steps=0", f"train.out_dir={run}"))
    assert proc.returncode == 0, proc.stderr
    assert (run / "config.yaml").is_file() and (run / "report.md").is_file()


def test_internal_errors_are_not_disguised_as_bad_input(monkeypatch):
    import sgpo.cli.train

    def broken(args):
        raise FileNotFoundError("metrics.jsonl")  # a bug, not the user's file

    monkeypatch.setattr(sgpo.cli.train, "run", broken)
    with pytest.raises(FileNotFoundError):
        main(["train"])

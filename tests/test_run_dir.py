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
def test_resume_from_a_checkpoint_without_weights_is_one_line_naming_it(old_run, tmp_path):
    import shutil

    _, run = old_run
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "checkpoints" / "step_4" / "model.safetensors").unlink()
    before = snapshot(broken)
    del before[".sgpo.lock"]  # the lock file records its last holder: this resume, refused after taking the lock
    proc = sgpo_cli("train", "--resume", str(broken))
    assert proc.returncode == 2
    assert last_line(proc) == (f"sgpo train: error: {broken / 'checkpoints' / 'step_4'} has no weights "
                               "(model.safetensors or pytorch_model.bin): not a complete model directory")
    assert {k: v for k, v in snapshot(broken).items() if k != ".sgpo.lock"} == before


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


# -- one run per directory: a lock held for the life of the run ------------------------------------

HOLD = ("import sys, time\nfrom sgpo.train.run_dir import RunDir\n"
        "run = RunDir(sys.argv[1]).open()\nprint('locked', flush=True)\ntime.sleep(600)\n")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the sha256 of its bytes."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def held(tmp_path):
    """A run directory locked by another live process (a real one, holding the real lock)."""
    import os
    import subprocess

    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline().strip() == "locked"
    yield run, proc
    proc.kill()
    proc.wait()


def test_a_run_into_a_directory_another_run_holds_is_refused_naming_the_holder(held, tmp_path, capsys):
    import socket

    run, holder = held
    before = snapshot(run)
    assert main(["train", *tiny_overrides(tmp_path, "train.steps=1", f"train.out_dir={run}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith(f"sgpo train: error: {run} is in use by another run (pid {holder.pid} on {socket.gethostname()} since ")
    assert "-c" in err[0]  # the holder's command line
    assert snapshot(run) == before


def test_resume_refuses_a_directory_another_live_run_holds(held, capsys):
    run, holder = held
    (run / "config.yaml").write_text("train: {steps: 1}\n")
    before = snapshot(run)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is in use by another run (pid {holder.pid} " in err[0]
    assert snapshot(run) == before


def test_the_lock_goes_when_its_holder_dies(held):
    from sgpo.train.run_dir import RunDir

    run, holder = held
    holder.kill()  # SIGKILL: no clean-up ran; the operating system releases the lock
    holder.wait()
    with RunDir(run) as mine:
        assert mine.held == []


def test_a_file_where_the_run_directory_goes_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.write_text("not a directory")
    assert main(["train", *tiny_overrides(tmp_path, f"train.out_dir={out}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sgpo train: error: train.out_dir {out} is a file; this command writes a directory there"]
    assert main(["train", *tiny_overrides(tmp_path, f"train.out_dir={out / 'run'}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sgpo train: error: train.out_dir {out / 'run'}: {out} is a file, not a directory"]
    assert out.read_text() == "not a directory"


def test_a_run_that_cannot_start_leaves_no_directory_behind(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_overrides(tmp_path, f"train.out_dir={run}", f"model.path={tmp_path / 'nowhere'}")]) == 2
    assert "model.path" in capsys.readouterr().err
    assert not run.exists()


@pytest.mark.slow
def test_two_runs_into_one_directory_one_proceeds_the_other_is_refused(tmp_path):
    """Two real `sgpo train` processes into one out_dir; the first is held mid-step by its judge (a
    loopback server that answers only when told), so both are alive when the second starts."""
    import os
    import subprocess
    import threading

    from fixtures_server import FakeServer, Response, completion

    release = threading.Event()

    def answer(i, body):
        release.wait(300)
        return Response(body=completion("\\boxed{0}"))

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with FakeServer(answer) as server:
        args = [sys.executable, "-m", "sgpo.cli", "train", *tiny_overrides(
            tmp_path, "train.steps=2", "train.eval_every=0", "algorithm.scope=all_incorrect", "judge.kind=llm_http",
            f"judge.http.base_url={server.base_url}", "judge.http.model=m", "judge.http.timeout_s=300", f"train.out_dir={run}")]
        first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            while not server.requests:  # the first run is inside step 1, waiting for its judge
                assert first.poll() is None, first.communicate()
                threading.Event().wait(0.1)
            second = subprocess.run(args, capture_output=True, text=True, env=env)
            resumed = subprocess.run([*args[:4], "--resume", str(run)], capture_output=True, text=True, env=env)
        finally:
            release.set()
            out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    for proc in (second, resumed):
        assert proc.returncode == 2
        line = last_line(proc)
        assert line.startswith(f"sgpo train: error: {run} is in use by another run (pid {first.pid} on ")
    from sgpo.train.metrics import read_jsonl

    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [0, 1, 2]  # one run's rows, not two interleaved

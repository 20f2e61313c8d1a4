"""A judge that is down is said out loud (issue 18 §5).

Bad judge settings are refused when the judge is built (exit 2, one line); a well-formed URL that
nobody answers is an outage: the run goes on (the failure rule of docs/metrics.md), warns on the console and in report.md,
and with judge.max_failure_frac stops before the update of the step that crossed it, leaving its
last checkpoint as it was. Servers are real processes and sockets on loopback.
"""

import hashlib
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures_server import free_port, stop  # noqa: E402
from test_faults import start_server  # noqa: E402
from testkit import tiny_overrides  # noqa: E402

from sgpo.cli import main  # noqa: E402
from sgpo.judges.watch import JudgeDown  # noqa: E402
from sgpo.train.config import load_config  # noqa: E402
from sgpo.train.trainer import Trainer  # noqa: E402


def http_judge(url: str) -> list[str]:
    return ["algorithm.method=sgpo", "algorithm.scope=all_incorrect", "judge.kind=llm_http", f"judge.http.base_url={url}",
            "judge.http.model=m", "judge.http.max_retries=0", "judge.http.timeout_s=5", "train.eval_every=0"]


@pytest.mark.parametrize("url", ["not a url", "127.0.0.1:8000/v1", "ftp://127.0.0.1/v1", "http:///v1", "http://127.0.0.1:99999/v1"])
def test_a_malformed_judge_url_is_refused_before_any_work(tmp_path, capsys, url):
    run = tmp_path / "run"
    assert main(["train", *tiny_overrides(tmp_path, *http_judge(url), f"train.out_dir={run}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith(f"sgpo train: error: judge.http.base_url={url!r} is not ")
    assert not run.exists() and not (tmp_path / "warmup").exists()


def test_a_prm_path_that_is_not_a_model_is_refused_before_any_work(tmp_path, capsys):
    run = tmp_path / "run"
    (tmp_path / "judge").mkdir()
    overrides = ["algorithm.method=sgpo", "judge.kind=prm", f"judge.prm.model={tmp_path / 'judge'}", f"train.out_dir={run}"]
    assert main(["train", *tiny_overrides(tmp_path, *overrides)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sgpo train: error: judge.prm.model='{tmp_path / 'judge'}' is not a local model directory (no config.json there)"]
    assert not run.exists()


def test_a_judge_on_a_closed_port_is_warned_about_and_the_run_completes(tmp_path, capsys):
    run = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}/v1"  # well formed; nobody listens: an outage, not bad input
    assert main(["train", *tiny_overrides(tmp_path, *http_judge(url), "train.steps=2", f"train.out_dir={run}")]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING:")]
    # Once when the failing streak starts, not once per step.
    assert len(warnings) == 1 and warnings[0].startswith("WARNING: step 1: the judge failed 8 of 8 verdicts (100%)")
    report = (run / "report.md").read_text()
    assert "WARNING: the judge failed on at least 50% of the judged responses in 2 of 2 steps" in report
    assert "Steps (failed share): 1 (100%), 2 (100%)" in report


def test_the_warning_threshold_is_configurable(tmp_path, capsys):
    run = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}/v1"
    overrides = [*http_judge(url), "train.steps=1", "judge.warn_failure_frac=1.0", f"train.out_dir={run}"]
    assert main(["train", *tiny_overrides(tmp_path, *overrides)]) == 0
    assert "WARNING" in capsys.readouterr().out and "WARNING" in (run / "report.md").read_text()


def test_max_failure_frac_stops_the_run_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}/v1"
    overrides = [*http_judge(url), "train.steps=3", "judge.max_failure_frac=0.9", f"train.out_dir={run}"]
    assert main(["train", *tiny_overrides(tmp_path, *overrides)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and [line for line in err if line.startswith("sgpo")] == err[-1:]
    assert err[-1].startswith("sgpo train: error: step 1: the judge failed 8 of 8 verdicts (100%), at or above "
                             "judge.max_failure_frac=0.9; stopped before this step's update")
    assert f"sgpo train --resume {run}" in err[-1]
    assert not (run / "checkpoints").exists()


def test_max_failure_frac_leaves_the_last_checkpoint_intact(tmp_path):
    """The judge server (a real process) is SIGKILLed after step 1's checkpoint; step 2 stops the run."""
    port = free_port()
    run = tmp_path / "run"
    overrides = [*http_judge(f"http://127.0.0.1:{port}/v1"), "train.steps=4", "train.save_every=1", "train.progress=false",
                 "judge.max_failure_frac=0.5", f"train.out_dir={run}"]
    server = start_server(port)
    digests = {}
    try:
        trainer = Trainer(load_config(None, tiny_overrides(tmp_path, *overrides)), log=lambda *a: None)
        step = trainer.step

        def step_with_outage() -> dict:
            if trainer.step_idx == 1:
                server.send_signal(signal.SIGKILL)
                server.wait()
                digests.update(_digests(run / "checkpoints"))
            return step()

        trainer.step = step_with_outage
        with pytest.raises(JudgeDown, match=r"^step 2: the judge failed \d+ of \d+ verdicts \(100%\)"):
            trainer.train()
    finally:
        stop(server)
    assert digests and sorted({k.split("/")[0] for k in digests}) == ["step_1"]
    assert _digests(run / "checkpoints") == digests  # step 1's checkpoint as it was; no step 2
    # The directory is free again: the run can be resumed once the judge is back.
    assert Trainer.resume_from(run, log=lambda *a: None).step_idx == 1


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

"""Signals and resume (issue 18 §4): Ctrl-C is one line and exit 130 with the last checkpoint
intact; resume is exact with every judge, the noisy one and the verdict cache included."""

from __future__ import annotations

import hashlib
import re
import signal

import pytest
from testkit import assert_resume_is_exact, comparable, sgpo_cli, tiny_overrides, train_killed_after_checkpoint

from sgpo.errors import ConfigError
from sgpo.judges import CachedJudge, JudgeRequest, NoisyJudge, Verdict
from sgpo.judges.state import judge_state, load_judge_state
from sgpo.train.metrics import read_jsonl


def hashes(directory) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_ctrl_c_is_one_line_exit_130_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    common = tiny_overrides(tmp_path, "train.steps=30", "train.save_every=2", "train.eval_every=0")
    seen = {}
    code, err = train_killed_after_checkpoint(common, run, checkpoint_step=2, last_step=30, sig=signal.SIGINT,
                                              on_checkpoint=lambda ckpt: seen.update(hashes(ckpt)))
    assert code == 130, err
    assert "Traceback" not in err and sum("interrupted" in line for line in err.splitlines()) == 1, err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(rf"sgpo train: interrupted at step (\d+); resume with `sgpo train --resume {re.escape(str(run))}` "
                     r"\(from step_(\d+)\)", last)
    assert m, last
    step, ckpt = int(m.group(1)), int(m.group(2))
    assert 2 <= ckpt <= step and ckpt == step - step % 2
    assert hashes(run / "checkpoints" / "step_2") == seen  # the checkpoint taken before the signal is untouched
    assert not list((run / "checkpoints").glob("*.tmp"))

    resumed = sgpo_cli("train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == list(range(31))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["shift", "random"])
def test_resume_after_sigkill_is_exact_with_a_noisy_judge(tmp_path, mode):
    common = tiny_overrides(tmp_path, "train.steps=6", "train.save_every=2", "train.eval_every=3",
                            "judge.noise_p=0.4", f"judge.noise_mode={mode}")
    a, b = assert_resume_is_exact(common, tmp_path, checkpoint_step=2, last_step=6)
    assert a["judge"] == b["judge"]  # cache and noise RNG end the same
    rows = comparable(read_jsonl(tmp_path / "full" / "metrics.jsonl"))
    assert rows[-1]["judge/corrupted"] > 0 and rows[-1]["judge/cache_misses"] > 0  # the noise and the cache were used


def _requests(n: int, offset: int = 0) -> list[JudgeRequest]:
    return [JudgeRequest(f"p{(i + offset) % 7}", [f"s{j}" for j in range(1 + (i + offset) % 4)]) for i in range(n)]


class Echo:
    """A deterministic inner judge: the first error is at the last step."""

    def judge(self, requests):
        return [Verdict(len(r.steps) - 1, len(r.steps)) for r in requests]


def test_judge_state_round_trip_gives_the_same_verdicts():
    def build():
        return CachedJudge(NoisyJudge(Echo(), 0.5, "random", seed=3), max_size=5)

    judge = build()
    judge.judge(_requests(12))
    saved = judge_state(judge)
    go_on = [judge.judge(_requests(6, offset=k)) for k in range(4)]

    fresh = build()
    load_judge_state(fresh, saved)
    assert [fresh.judge(_requests(6, offset=k)) for k in range(4)] == go_on
    assert judge_state(fresh) == judge_state(judge)

    unrestored = build()  # what resume did before: a new noise RNG and an empty cache
    assert [unrestored.judge(_requests(6, offset=k)) for k in range(4)] != go_on


def test_judge_state_refuses_another_judge():
    with pytest.raises(ConfigError, match="resume needs the judge the checkpoint was made with"):
        load_judge_state(Echo(), judge_state(CachedJudge(Echo())))


class Lazy:
    """Like LazyPRMJudge: its ``.inner`` appears only once the model has loaded."""

    def __init__(self):
        self.inner = None

    def judge(self, requests):
        self.inner = self.inner or Echo()
        return self.inner.judge(requests)


def test_judge_state_loads_into_a_lazy_judge_that_has_not_loaded_yet():
    judge = CachedJudge(Lazy())
    judge.judge(_requests(4))  # loaded: the chain is cache -> lazy -> model
    saved = judge_state(judge)
    fresh = CachedJudge(Lazy())  # a resumed run: cache -> lazy, nothing loaded
    load_judge_state(fresh, saved)
    assert judge_state(fresh) == saved


def test_a_checkpoint_from_before_new_config_keys_still_resumes():
    from sgpo.train.config import Config
    from sgpo.train.run_dir import config_diff, saved_config

    old = Config().model_dump(mode="json")
    del old["train"]["max_skipped_steps"], old["judge"]["rollout"]  # keys added after it was written
    assert config_diff(saved_config({"config": old}), Config().model_dump(mode="json")) == []
    assert config_diff(old, Config().model_dump(mode="json")) != []  # what resume compared before


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch, capsys):
    import sgpo.cli.theory as theory

    def run(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(theory, "run", run)
    from sgpo.cli import main

    assert main(["theory"]) == 130
    assert capsys.readouterr().err == "sgpo theory: interrupted\n"


def test_the_interrupt_a_run_raises_is_still_a_keyboard_interrupt(tmp_path):
    from sgpo.errors import RunInterrupted
    from sgpo.train.guard import interrupted

    e = interrupted(tmp_path, 3)
    assert isinstance(e, RunInterrupted) and isinstance(e, KeyboardInterrupt)
    assert str(e) == "interrupted at step 3, before the first checkpoint: nothing to resume"

"""What a run directory holds, and whether a run may start in it or resume from it.

:class:`RunDir` is the one object that opens a run directory: it refuses a file where the
directory goes, refuses (or with ``overwrite`` clears) a directory that holds a run, checks that
a resumed one has a config and a checkpoint made with that config (and the same rollouts file),
and holds an exclusive lock on it for the life of the run, so two runs never write into one
directory. The lock is ``fcntl.flock`` on a file inside the directory:
the operating system releases it when the process ends, however it ends, so a killed run never
leaves a stale lock behind; the file also records who holds it (pid, host, command), for the
error the second run gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from sgpo.errors import ConfigError, MissingInputError
from sgpo.files.outputs import check_out
from sgpo.rollouts.file import RolloutsError
from sgpo.train.checkpoint import latest_checkpoint, load_trainer_state
from sgpo.train.config import Config, load_config, save_config
from sgpo.train.metrics import truncate_jsonl

#: What a run writes into its directory; a fresh run refuses a directory holding any of them.
RUN_FILES = ("config.yaml", "metrics.jsonl", "samples.jsonl", "report.md", "checkpoints", "plots", "tensorboard")
#: The lock file; not a run file (it outlives runs harmlessly: only a held flock means "in use").
LOCK = ".sgpo.lock"


#: Config keys a resumed run may change (in its config.yaml): they schedule the rest of the run but
#: do not change what the checkpoint computed, e.g. raising train.steps to train longer.
SCHEDULE_KEYS = frozenset({"train.steps", "train.eval_every", "train.save_every", "train.log_samples",
                           "train.progress", "train.tensorboard",
                           # When to warn about, or stop for, a failing judge: raised to resume after an outage.
                           "judge.warn_failure_frac", "judge.max_failure_frac",
                           # How many non-finite updates in a row stop a run: raised to resume after a stop.
                           "train.max_skipped_steps",
                           # How the judge server is reached: after an outage it may be back elsewhere or slower.
                           *(f"judge.http.{k}" for k in ("base_url", "timeout_s", "max_retries", "backoff_s",
                                                          "backoff_max_s", "retry_timeouts", "concurrency", "api_key_env"))})


def saved_config(state: dict) -> dict:
    """The config a checkpoint was made with, keys added since then at their defaults (they did not
    exist, so the run behaved as their defaults do)."""
    return Config.model_validate(state.get("config", {})).model_dump(mode="json")


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += config_diff(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out


class RunDir:
    """A run directory, opened for one run: ``with RunDir(path).open() as run: ...``.

    ``files``: the names this kind of directory holds (a training run's by default; ``sgpo
    compare`` passes its own); ``what``: how errors name the option that chose the directory.
    """

    def __init__(self, path: str | Path, resume: bool = False, overwrite: bool = False, files=RUN_FILES,
                 what: str = "train.out_dir"):
        self.path, self.resume, self.overwrite, self.files, self.what = Path(path), resume, overwrite, tuple(files), what
        self.held: list[str] = []
        self._lock = None
        self._created = self._made_lock = False  # by this object, so close() may take them away again

    def open(self) -> "RunDir":
        """Check the directory and take its lock, before any work; errors are one line. A refused
        start leaves the directory as it found it."""
        check_out(self.path, "dir", overwrite=True, flag=self.what)  # a file there, or above it
        if self.resume and not self.path.is_dir():
            raise MissingInputError(f"{self.path} is not a run directory (no such directory)")
        if not self.resume and not self.overwrite:
            self._refuse_held()  # read-only, so refusing writes nothing
        self.lock()  # then, whatever the directory holds, a live run's directory is "in use"
        if self.resume and not (self.path / "config.yaml").is_file():
            self.close()
            raise MissingInputError(f"{self.path} is not a run directory (no config.yaml)")
        if not self.resume:
            self.held = [n for n in self.files if (self.path / n).exists()]
            if not self.overwrite:
                self._refuse_held()  # written by a run that ended while we waited for the lock
        return self

    def _refuse_held(self) -> None:
        held = [n for n in self.files if (self.path / n).exists()]
        if not held:
            return
        self.close()
        holder = _live_holder(self.path / LOCK)
        if holder is not None:
            raise _in_use(self.path, holder)
        resume = f"continue it with `sgpo train --resume {self.path}`, or " if self.files == RUN_FILES else ""
        raise ConfigError(f"{self.path} already holds a run ({', '.join(held)}); {resume}pass --overwrite to replace it")

    def lock(self) -> None:
        """Take the directory's lock (creating the directory) or fail naming its holder."""
        while self._lock is None:
            self._created = self._created or not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            self._made_lock = self._made_lock or not (self.path / LOCK).exists()
            f = open(self.path / LOCK, "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read()
                f.close()
                raise _in_use(self.path, holder) from None
            try:  # a run that just gave the directory up may have removed the file we locked: lock the new one
                same = os.stat(self.path / LOCK).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                f.close()
                continue
            f.truncate(0)
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                "command": " ".join(sys.argv)}) + "\n")
            f.flush()
            self._lock = f

    def clear(self) -> None:
        """Remove the old run's files (``overwrite``); call once the new run is ready to write."""
        for name in self.held:
            path = self.path / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.held = []

    def start(self, cfg: Config) -> None:
        """Begin a fresh run: clear the old run's files (``overwrite``) and write its config.yaml."""
        self.clear()
        save_config(cfg, self.path / "config.yaml")

    def read_config(self) -> Config:
        """The config of the run in this directory (its config.yaml), to resume it with."""
        return load_config(self.path / "config.yaml")

    def checkpoint_to_resume(self, cfg: Config, rollouts_sha256: str | None = None,
                             rollouts_path: str | Path | None = None) -> tuple[Path, dict]:
        """The latest complete checkpoint and its trainer state, checked against the resuming run.

        Its config must be ``cfg`` up to :data:`SCHEDULE_KEYS` (:class:`ConfigError` naming the
        keys otherwise); with ``rollouts_sha256`` (an offline run: the fingerprint of the rollouts
        file at ``rollouts_path``), the checkpoint must have been made from the same file
        (:class:`RolloutsError`). No checkpoint: :class:`MissingInputError`.
        """
        ckpt = latest_checkpoint(self.path)
        if ckpt is None:
            raise MissingInputError(f"no complete checkpoint under {self.path / 'checkpoints'} to resume from")
        state = load_trainer_state(ckpt)
        changed = [k for k in config_diff(saved_config(state), cfg.model_dump(mode="json")) if k not in SCHEDULE_KEYS]
        if changed:
            raise ConfigError(f"{ckpt} was saved by a run with another config ({', '.join(changed[:8])} differ from "
                              f"{self.path / 'config.yaml'}); resume needs the config the checkpoint was made with")
        if rollouts_sha256 is not None and state.get("rollouts_sha256", rollouts_sha256) != rollouts_sha256:
            raise RolloutsError(f"{rollouts_path} has changed since {ckpt} was saved; resume needs the same rollouts file")
        return ckpt, state

    def rewind(self, step: int) -> None:
        """Drop the metrics and sample records past ``step`` (the resumed checkpoint's), so the
        resumed run appends where that checkpoint left off."""
        for name in ("metrics.jsonl", "samples.jsonl"):
            truncate_jsonl(self.path / name, step)

    def close(self) -> None:
        """Release the lock. A run that wrote nothing takes its lock file (and the directory, if it
        made it) away again, so a start refused later (a bad model path) leaves no trace."""
        if self._lock is None:
            return
        if self._made_lock and not any((self.path / n).exists() for n in self.files):
            os.unlink(self.path / LOCK)
            if self._created and not os.listdir(self.path):
                os.rmdir(self.path)
        self._lock.close()
        self._lock = None

    @contextlib.contextmanager
    def released_on_error(self):
        """Release the lock if the block fails (a run that cannot start holds nothing)."""
        try:
            yield self
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "RunDir":
        return self if self._lock is not None else self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def _live_holder(lock: Path) -> str | None:
    """What the lock file says about its holder, if a live process holds it; None if none does."""
    try:
        f = open(lock)
    except FileNotFoundError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read()
    return None


def _in_use(path: Path, holder: str) -> ConfigError:
    return ConfigError(f"{path} is in use by another run ({_describe(holder)}); wait for it to end or choose another directory")


def _describe(holder: str) -> str:
    try:
        h = json.loads(holder)
        return f"pid {h['pid']} on {h['host']} since {h['started']}: {' '.join(str(h['command']).split())}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"

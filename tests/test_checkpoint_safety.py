"""Opening a run directory never runs code from it: trainer state is JSON plus tensors loaded with weights_only."""

import json
import os
import pickle
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from testkit import sgpo_cli, tiny_overrides  # noqa: E402

from sgpo.errors import DataError  # noqa: E402
from sgpo.train.checkpoint import load_trainer_state  # noqa: E402


class Payload:
    """What a malicious checkpoint would carry: unpickling it runs ``os.system``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    out = sgpo_cli("train", *tiny_overrides(tmp, "train.steps=2", "train.save_every=1", "train.eval_every=0",
                                            f"train.out_dir={tmp / 'run'}"))
    assert out.returncode == 0, out.stderr
    return tmp / "run"


@pytest.mark.slow
def test_state_is_plain_json_and_tensors(run):
    ckpt = run / "checkpoints" / "step_2"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == 2 and state["format"] == 2 and "numpy_rng" in state
    full = load_trainer_state(ckpt)
    assert full["optimizer"]["state"] and full["torch_rng"].dtype.is_floating_point is False


@pytest.mark.slow
def test_a_tampered_tensors_file_is_refused_without_running_it(run, tmp_path):
    ckpt = run / "checkpoints" / "step_1"
    marker = tmp_path / "pwned"
    (ckpt / "trainer_tensors.pt").write_bytes(pickle.dumps({"optimizer": Payload(marker)}))
    with pytest.raises(DataError, match="not a trainer state this sgpo wrote, refused"):
        load_trainer_state(ckpt)
    assert not marker.exists()


@pytest.mark.slow
def test_resume_from_a_tampered_run_is_a_one_line_error(run, tmp_path):
    ckpt = run / "checkpoints" / "step_2"
    marker = tmp_path / "pwned"
    (ckpt / "trainer_tensors.pt").write_bytes(pickle.dumps({"optimizer": Payload(marker)}))
    out = sgpo_cli("train", "--resume", str(run))
    assert out.returncode == 2 and not marker.exists()
    assert out.stderr.strip().splitlines()[-1].startswith("sgpo train: error:") and "refused" in out.stderr

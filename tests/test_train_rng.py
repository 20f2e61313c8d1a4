"""Evaluation must not change training: it runs on forked random generators."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from testkit import tiny_overrides  # noqa: E402

from sgpo.train.compare import default_config_path  # noqa: E402
from sgpo.train.config import load_config  # noqa: E402
from sgpo.train.metrics import read_jsonl  # noqa: E402
from sgpo.train.trainer import Trainer  # noqa: E402


def completions(tmp_path: Path, name: str, eval_every: int) -> list[str]:
    cfg = load_config(default_config_path(), tiny_overrides(tmp_path, "train.steps=3", f"train.eval_every={eval_every}",
                                                            "train.save_every=0", "train.log_samples=8"))
    Trainer(cfg, tmp_path / name, log=lambda *a: None).train()
    return [s["completion"] for s in read_jsonl(tmp_path / name / "samples.jsonl")]


def test_changing_eval_every_leaves_the_training_samples_the_same(tmp_path):
    every_step = completions(tmp_path, "a", eval_every=1)
    rarely = completions(tmp_path, "b", eval_every=0)
    assert len(every_step) == 24 and every_step == rarely

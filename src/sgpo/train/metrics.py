"""Where metrics go: metrics.jsonl (one object per step), TensorBoard, and samples.jsonl (the
first responses of each step, :func:`sample_records`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from sgpo.files.outputs import write_text_atomic

if TYPE_CHECKING:
    import torch

    from sgpo.grading import Graded


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop records past ``max_step`` (and a torn last line) so a resumed run appends cleanly."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= max_step:
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))  # a crash here must not lose the run's history


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def sample_records(step: int, problems: list, texts: list[str], outcomes: torch.Tensor, shaped: Graded, n: int) -> list[dict]:
    """The first ``n`` responses of a step as ``samples.jsonl`` rows. outcomes: [N, G]."""
    G = outcomes.shape[1]
    records = []
    for i in range(min(n, len(texts))):
        v = shaped.verdicts.get(i)
        records.append({
            "step": step,
            "prompt": problems[i // G].question,
            "completion": texts[i],
            "outcome": outcomes.view(-1)[i].item(),
            "verdict": None if v is None else {"first_error": v.first_error, "n_steps": v.n_steps, "status": v.status},
            "reward": shaped.rewards.view(-1)[i].item(),
            "advantage": shaped.advantages.view(-1)[i].item(),
        })
    return records


class MetricsWriter:
    """Appends one JSON object per step to metrics.jsonl, and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool = False):
        self.metrics_path = run_dir / "metrics.jsonl"
        self.samples_path = run_dir / "samples.jsonl"
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, metrics: dict) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.tb is not None:
            for key, value in metrics.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, metrics["step"])
            self.tb.flush()

    def samples(self, records: list[dict]) -> None:
        if records:
            with self.samples_path.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

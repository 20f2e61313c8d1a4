"""Where metrics go: metrics.jsonl (one object per step), TensorBoard, and samples.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from sgpo.files.outputs import write_text_atomic


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

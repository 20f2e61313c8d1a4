"""torchrun worker of tests/test_trl.py: a few SGPOTrainer steps, each process logging what it judged."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from trl_setup import trainer  # noqa: E402

if __name__ == "__main__":
    out = Path(sys.argv[1])
    # 6 completions per process, G = 4: the second group of every batch is split over the two processes.
    trainer(out / "run", judge_log=out / "judged", per_device=6, steps=int(sys.argv[2])).train()
    # Left to interpreter shutdown, gloo's threads are sometimes torn down while still joinable and
    # the process aborts ("terminate called without an active exception") after a good run.
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()

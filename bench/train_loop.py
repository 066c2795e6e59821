"""Throughput of the whole pre-training loop: Lightning, the data module and its loader workers, callbacks.

``bench.py`` times the step alone; this runs ``ecgjepa.train.run`` with the given Hydra overrides and times
every batch (device synchronised) after ``--warmup`` steps. If the loader cannot keep up, the
loop's ECG/s falls below the step's. Prints one JSON line.

    python bench/train_loop.py trainer=gpu model=vit_s data.batch_size=2048 data.num_workers=null \\
        trainer.max_steps=40 optim.steps=40
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from ecgjepa.train import run
from ecgjepa.utils.hydra import compose_config


class StepTimer(L.Callback):
    """Wall time between consecutive training-batch ends (the loop's period, data waits included)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        self.ends.append(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the 'train' config")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    args = parser.parse_args()
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config("train", ["logger=none", "callbacks=pretrain", *args.overrides], Path(out))
        cfg.callbacks.lr_monitor = None
        run(cfg, extra_callbacks=[timer])
    periods = [b - a for a, b in zip(timer.ends[args.warmup :], timer.ends[args.warmup + 1 :], strict=False)]
    if not periods:
        raise SystemExit(f"--warmup {args.warmup}: the run made only {len(timer.ends)} steps; give more steps")
    step_s = statistics.median(periods)
    result = {"overrides": args.overrides, "batches_timed": len(periods), "batch_s": step_s}
    print(json.dumps({**result, "ecgs_per_s": cfg.data.batch_size / step_s}))


if __name__ == "__main__":
    main()

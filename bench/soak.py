"""Soak test: pre-train on the bundled sample for a fixed wall time with periodic checkpoints and report
whether memory stays flat and throughput holds.

    python bench/soak.py [--minutes 20] [--checkpoint-every 50] [--out outputs/soak]

Prints RSS and steps/s per window and a verdict; writes ``soak.json`` into the run directory.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import numpy as np
from hydra import compose, initialize_config_dir

from ecgjepa.train import run
from ecgjepa.utils.paths import conf_dir

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class SoakMonitor(L.Callback):
    """Samples (seconds, step, RSS MB) every ``every_s`` seconds of training; stops after ``minutes``."""

    def __init__(self, minutes: float, every_s: float = 5.0) -> None:
        self.minutes = minutes
        self.every_s = every_s
        self.samples: list[tuple[float, int, float]] = []

    def on_train_start(self, trainer: L.Trainer, *args: object) -> None:
        self.start = time.time()

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        now = time.time() - self.start
        if not self.samples or now - self.samples[-1][0] >= self.every_s:
            self.samples.append((now, trainer.global_step, rss_mb()))
        if now > 60 * self.minutes:
            trainer.should_stop = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "soak")
    parser.add_argument("--model", default="vit_xs")
    args = parser.parse_args()
    overrides = [
        f"model={args.model}",
        "trainer=cpu",
        "logger=csv",
        "callbacks=pretrain",
        "optim.steps=1000000",
        f"callbacks.model_checkpoint.every_n_train_steps={args.checkpoint_every}",
        "callbacks.model_checkpoint.save_top_k=1",
        "trainer.enable_progress_bar=false",
    ]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    cfg.paths.output_dir = str(args.out)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: choose another --out")
    monitor = SoakMonitor(args.minutes)
    run(cfg, extra_callbacks=[monitor])
    samples = np.array(monitor.samples)
    quarter = max(2, len(samples) // 4)
    first, last = samples[:quarter], samples[-quarter:]

    def rate(window: np.ndarray) -> float:
        return float((window[-1, 1] - window[0, 1]) / (window[-1, 0] - window[0, 0]))

    report = {
        "minutes": args.minutes,
        "steps": int(samples[-1, 1]),
        "rss_mb_first_quarter": float(first[:, 2].mean()),
        "rss_mb_last_quarter": float(last[:, 2].mean()),
        "rss_mb_max": float(samples[:, 2].max()),
        "steps_per_s_first_quarter": rate(first),
        "steps_per_s_last_quarter": rate(last),
        "samples": samples.tolist(),
    }
    growth = report["rss_mb_last_quarter"] - report["rss_mb_first_quarter"]
    slowdown = 1 - report["steps_per_s_last_quarter"] / report["steps_per_s_first_quarter"]
    report["verdict"] = "flat" if growth < 50 and slowdown < 0.15 else "CHECK"
    (args.out / "soak.json").write_text(json.dumps(report, indent=2))
    print(
        f"{report['steps']} steps in {args.minutes} min; RSS {report['rss_mb_first_quarter']:.0f} -> "
        f"{report['rss_mb_last_quarter']:.0f} MB (max {report['rss_mb_max']:.0f}); steps/s "
        f"{report['steps_per_s_first_quarter']:.2f} -> {report['steps_per_s_last_quarter']:.2f}; {report['verdict']}"
    )


if __name__ == "__main__":
    main()

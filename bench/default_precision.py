"""Whole default runs against the same runs forced to float32: does ``precision=auto`` pick the faster one here?

    python bench/default_precision.py                 # 20 pre-training steps and a 50-step probe, 2 rounds
    python bench/default_precision.py --steps 40 --rounds 3

Each run is a fresh ``python -m ecgjepa.train`` / ``ecgjepa.eval`` process on the bundled sample (ViT-XS,
batch 32), timed from start to exit; the two settings alternate within each round. Prints the CPU's bf16
capability as torch reports it, the precision ``auto`` chose, the median seconds of each setting and their
ratio, and writes JSON to ``bench/results/default_precision.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ecgjepa.accel.capability import native_bf16

SETTINGS = {"default (auto)": [], "32-true": ["trainer.precision=32-true"]}


def commands(work: str, steps: int, out: Path) -> list[str]:
    if work == "pretrain":
        return [
            "ecgjepa.train",
            f"trainer.max_steps={steps}",
            "trainer.accelerator=cpu",
            "callbacks=pretrain",
            "logger=none",
            "callbacks.encoder_export=null",
            f"hydra.run.dir={out}",
        ]
    return [
        "ecgjepa.eval",
        "encoder=vit_xs",
        "dataset=ptbxl_sample",
        "task=superdiagnostic",
        "trainer.accelerator=cpu",
        "logger=none",
        f"protocol.steps={steps}",
        f"protocol.checkpoint_interval={steps}",
        "protocol.batch_size=32",
        f"hydra.run.dir={out}",
    ]


def timed(work: str, steps: int, extra: list[str]) -> tuple[float, str]:
    """Seconds of one whole run, and the line in which it logged its ``precision=auto`` choice."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", *commands(work, steps, Path(tmp) / "run"), *extra]
        start = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    output = result.stdout + result.stderr
    chosen = next((line for line in output.splitlines() if "precision=auto ->" in line), "")
    return seconds, chosen.split(" - ")[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="pre-training steps (the probe runs 2.5x as many)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/default_precision.json"))
    args = parser.parse_args()
    native, why = native_bf16("cpu")
    print(
        f"CPU: {platform.processor() or platform.machine()}; native bf16: {native} ({why}); torch {torch.__version__}"
    )
    rows = []
    for work, steps in (("pretrain", args.steps), ("linear", round(args.steps * 2.5))):
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        chosen = ""
        for _ in range(args.rounds):
            for name, extra in SETTINGS.items():
                seconds, line = timed(work, steps, extra)
                times[name].append(seconds)
                chosen = line or chosen
        medians = {name: statistics.median(values) for name, values in times.items()}
        ratio = medians["32-true"] / medians["default (auto)"]
        rows.append(
            {
                "work": work,
                "steps": steps,
                "seconds": times,
                "median": medians,
                "speed_vs_fp32": ratio,
                "auto_chose": chosen,
            }
        )
        print(
            f"{work:8s} {steps:4d} steps: default {medians['default (auto)']:.1f} s, 32-true "
            f"{medians['32-true']:.1f} s -> default runs at {ratio:.2f}x float32's speed; {chosen}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"native_bf16": native, "reason": why, "torch": torch.__version__, "runs": rows}, indent=2)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Benchmark of `python -m data_prep`: throughput on the PTB-XL sample and peak memory vs corpus size.

1. records/s for dumping `sample_data/ptbxl` (500 records at 100 Hz, resampled to 500 Hz) with 1 and
   2 workers (in-process call, interpreter start-up excluded; median of `--repeats` runs).
2. Peak RSS (largest of the main process and its workers, from `getrusage(RUSAGE_CHILDREN)` of a
   wrapper process) of full CLI runs over synthetic PTB-XL-layout corpora 1x, 10x and 100x the
   sample's record count. The corpora are `wfdb.wrsamp` records (12 leads, 100 Hz, `--seconds`
   long) listed cyclically by a synthetic `ptbxl_database.csv`. Memory must not grow with the scale.

Usage: python bench/bench_prepare.py [--scales 1 10 100] [--seconds 1] [--workers 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_prep.common import dump_source  # noqa: E402
from ecgjepa.core.leads import CANONICAL_LEADS  # noqa: E402
from ecgjepa.core.records import write_wfdb  # noqa: E402

SAMPLE = REPO / "sample_data" / "ptbxl"
DISTINCT_RECORDS = 500
RSS_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def throughput(workers: int, out: Path, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        result = dump_source(
            "ptbxl", SAMPLE, out, workers=workers, rate=100, force=True, progress=False, log=lambda _: None
        )
        rates.append(result.num_records / result.seconds)
    return rates


def write_corpus(root: Path, num_records: int, seconds: float) -> None:
    """A PTB-XL-layout folder: DISTINCT_RECORDS synthetic WFDB files, `num_records` CSV rows."""
    rng = np.random.default_rng(0)
    fs, length = 100, int(100 * seconds)
    folder = root / "records100" / "00000"
    folder.mkdir(parents=True)
    t = np.arange(length) / fs
    for k in range(DISTINCT_RECORDS):
        phase = rng.uniform(0, 2 * np.pi, 12)
        x = 0.5 * np.sin(2 * np.pi * 1.2 * t[:, None] + phase) + 0.05 * rng.standard_normal((length, 12))
        write_wfdb(folder / f"{k:05d}_lr", x, fs, CANONICAL_LEADS)
    ids = np.arange(1, num_records + 1)
    pd.DataFrame(
        {
            "ecg_id": ids,
            "strat_fold": ids % 10 + 1,
            "filename_lr": [f"records100/00000/{(i - 1) % DISTINCT_RECORDS:05d}_lr" for i in ids],
            "filename_hr": "",
        }
    ).to_csv(root / "ptbxl_database.csv", index=False)


def peak_rss(raw: Path, out: Path, workers: int) -> tuple[float, float, dict]:
    command = [sys.executable, "-m", "data_prep", "ptbxl", "--raw", str(raw), "--out", str(out)]
    command += ["--rate", "100", "--workers", str(workers), "--no-progress"]
    started = time.perf_counter()
    wrapper = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *command], cwd=REPO, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    meta = json.loads((out / "ptbxl" / "meta.json").read_text())
    return int(wrapper.stdout.strip()) / 1024, seconds, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each synthetic record")
    parser.add_argument("--workers", type=int, default=2, help="workers of the memory runs")
    parser.add_argument("--repeats", type=int, default=5, help="runs per throughput measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        print(f"PTB-XL sample ({SAMPLE.relative_to(REPO)}, 500 records at 100 Hz -> 500 Hz)")
        for workers in (1, 2):
            rates = throughput(workers, tmp_dir / "sample", args.repeats)
            print(
                f"  workers={workers}: median {np.median(rates):.0f} records/s "
                f"(min {min(rates):.0f}, max {max(rates):.0f}, {args.repeats} runs)"
            )
        print(f"synthetic corpora ({args.seconds:g}-s records at 100 Hz), CLI with --workers {args.workers}")
        print("  scale  records   samples@500Hz  wall s  records/s  peak RSS MB")
        for scale in args.scales:
            raw = tmp_dir / f"raw{scale}"
            write_corpus(raw, DISTINCT_RECORDS * scale, args.seconds)
            rss, seconds, meta = peak_rss(raw, tmp_dir / f"out{scale}", args.workers)
            records = meta["num_records"]
            print(
                f"  {scale:>5}  {records:>7}  {meta['total_samples']:>14}  {seconds:>6.1f}  "
                f"{records / seconds:>9.0f}  {rss:>11.0f}"
            )
            for path in (raw, tmp_dir / f"out{scale}"):
                shutil.rmtree(path)


if __name__ == "__main__":
    main()

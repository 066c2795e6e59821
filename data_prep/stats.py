"""Per-lead mean / std of a dump (ECG-JEPA scripts/compute_mean_std.py), streamed block by block in float64.

Mirrors ECG-JEPA `scripts/compute_mean_std.py`, but on the 500 Hz canonical-order dump, with a
numerically stable merge of per-block moments (Chan et al.). The std is the **population** std
(ddof = 0); the original used ddof = 1 for fixed-length dumps, a relative difference below 1e-6 at
these sizes. `python -m data_prep.stats DUMP_DIR [--folds ...]` prints the statistics of a dump.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ecgjepa.core.dump_writer import BLOCK_ROWS, LeadStats


def dump_stats(dump_dir: Path, folds: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Statistics of the finished dump in `dump_dir`, over the records of `folds` if given.

    Reads `signals.npy` with plain file reads rather than a memory map, so memory stays bounded.
    """
    path = dump_dir / "signals.npy"
    header = np.load(path, mmap_mode="r")
    index = pd.read_csv(dump_dir / "index.csv", usecols=["start", "length", "fold"])
    if folds is not None:
        index = index[index["fold"].isin(list(folds))]
    ranges: list[list[int]] = []
    for start, length in zip(index["start"].tolist(), index["length"].tolist(), strict=True):
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + length
        else:
            ranges.append([start, start + length])
    stats = LeadStats(header.shape[1])
    row_bytes = header.dtype.itemsize * header.shape[1]
    for start, stop in ranges:
        for block_start in range(start, stop, BLOCK_ROWS):
            rows = min(BLOCK_ROWS, stop - block_start)
            offset = header.offset + block_start * row_bytes
            block = np.fromfile(path, dtype=header.dtype, count=rows * header.shape[1], offset=offset)
            stats.update(block.reshape(rows, header.shape[1]))
    return stats.result()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_prep.stats", description=__doc__.split("\n")[0])
    parser.add_argument("dump_dir", type=Path, help="a dump folder, e.g. OUT/ptbxl")
    parser.add_argument("--folds", type=int, nargs="+", help="PTB-XL folds to include (default: all records)")
    args = parser.parse_args(argv)
    result = dump_stats(args.dump_dir, args.folds)
    mean, std = (None, None) if result is None else (result[0].tolist(), result[1].tolist())
    print(json.dumps({"mean": mean, "std": std}))


if __name__ == "__main__":
    main()

"""Record references, WFDB reading and the per-record preprocessing shared by all sources.

Mirrors ECG-JEPA `scripts/dump_data.py` + `scripts/preprocess_data_dump.py` + the load-time steps of
`data/utils.py` (spec §2.2, §2.3, §3.1 steps 1, 2 and 5), so that the dump is already at 500 Hz in
canonical lead order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import wfdb

from data_prep.sources import TARGET_FS, SourceSpec
from ecgjepa.data.signal import interpolate_nans, lead_permutation, remove_baseline_wander, resample


class DataPrepError(Exception):
    """A problem with the whole source (missing raw dir or CSV, unwritable output), not one record."""


class RecordRef(NamedTuple):
    """One record to dump: picklable and small, so that a record list of a million entries is cheap.

    Attributes:
        record_id: written to index.csv / rejects.csv (ecg_id, exam_id or path relative to the raw dir).
        location: path of the record relative to the raw dir (WFDB: without extension; CODE-15: HDF5 file).
        fold: PTB-XL `strat_fold`, else None.
        row: CODE-15 row in the HDF5 file (-1 if the exam_id was not found), else -1.
        fs, leads: sampling rate and comma-separated lead names of an array file of a folder source (WFDB
            records carry both in their header).
    """

    record_id: int | str
    location: str
    fold: int | None = None
    row: int = -1
    fs: float = float("nan")
    leads: str = ""


class RawRecord(NamedTuple):
    """A record as read from disk: `signal` (samples, leads) in physical units, native fs and lead names, and
    the diagnoses its header lists (`# Dx:` SNOMED CT codes of the Challenge 2020/2021 headers), if any."""

    signal: np.ndarray
    fs: float
    leads: Sequence[str]
    dx: tuple[str, ...] = ()


def read_wfdb(path: Path) -> RawRecord:
    """Read a WFDB record (`.hea` + `.dat`/`.mat`) as physical float64 values."""
    signal, fields = wfdb.rdsamp(str(path))
    return RawRecord(signal, float(fields["fs"]), list(fields["sig_name"]), header_dx(fields.get("comments") or []))


def header_dx(comments: Sequence[str]) -> tuple[str, ...]:
    """The codes of a header's `Dx:` comment (`# Dx: 164889003,59118001`), in order; () without one."""
    for comment in comments:
        key, _, value = comment.strip().partition(":")
        if key.strip().casefold() == "dx":
            return tuple(code.strip() for code in value.split(",") if code.strip())
    return ()


def prepare_record(raw: RawRecord, spec: SourceSpec) -> np.ndarray:
    """Turn a raw record into the dumped form: float16, (samples at 500 Hz, 12), canonical lead order.

    Order of operations as in the original: cast to float16, [CODE-15 / St-Petersburg: interpolate
    NaNs and remove baseline wander at native fs], interpolate NaNs, FFT-resample to 500 Hz, reorder.
    Raises `ValueError` with a readable reason when the record must be rejected.
    """
    # NOTE(parity): leads are matched by the header's names instead of the class constants (spec §2.7).
    perm = lead_permutation(raw.leads)
    if raw.signal.ndim != 2 or raw.signal.shape[0] == 0:
        raise ValueError(f"no samples (signal shape {raw.signal.shape})")
    x = raw.signal.astype(np.float16)
    if spec.remove_baseline:
        x = remove_baseline_wander(interpolate_nans(x), raw.fs)
    x = resample(interpolate_nans(x), raw.fs, TARGET_FS)
    x = np.ascontiguousarray(x[:, perm])
    if x.shape[0] < spec.min_length:
        raise ValueError(f"too short: {x.shape[0]} samples at {TARGET_FS} Hz < {spec.min_length}")
    if not np.isfinite(x).all():
        raise ValueError("non-finite values after the float16 cast (amplitude out of float16 range)")
    return x

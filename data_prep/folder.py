"""A folder of one's own records: WFDB records (``.hea`` + ``.dat``/``.mat``) anywhere below it, and array files
(``.npy``, ``.h5``) listed in a manifest CSV with their sampling rate and lead names.

Manifest columns: ``file`` (relative to the manifest's folder, or absolute), ``sampling_rate`` (Hz) and
``leads`` (the lead names in the array's order, comma-separated, e.g. ``I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6``).
An array is (samples, leads) or (leads, samples); an HDF5 file holds one dataset (or names it in an optional
``dataset`` column).
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from data_prep.records import DataPrepError, RawRecord, RecordRef, read_wfdb

MANIFEST_COLUMNS = ("file", "sampling_rate", "leads")
ARRAY_SUFFIXES = (".npy", ".h5", ".hdf5")


def discover(raw: Path, manifest: Path | None = None) -> list[RecordRef]:
    """Every WFDB header below ``raw`` (record id: its path relative to ``raw``, sorted), then the manifest's
    array files in the manifest's order (record id: the ``file`` entry)."""
    refs = [
        RecordRef(name, name)
        for name in sorted(path.relative_to(raw).with_suffix("").as_posix() for path in raw.rglob("*.hea"))
    ]
    if manifest is not None:
        refs += manifest_records(Path(manifest))
    if not refs:
        raise DataPrepError(
            f"no record found under {raw}: expected WFDB records (<name>.hea + .dat/.mat) at any depth, or "
            f"array files listed with --manifest (a CSV with columns {', '.join(MANIFEST_COLUMNS)})"
        )
    return refs


def manifest_records(manifest: Path) -> list[RecordRef]:
    if not manifest.is_file():
        raise DataPrepError(f"manifest {manifest} not found")
    try:
        table = pd.read_csv(manifest, dtype={"file": str, "leads": str})
    except (ValueError, UnicodeDecodeError) as err:
        raise DataPrepError(f"{manifest}: not a readable CSV: {err}") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise DataPrepError(f"{manifest}: missing column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    refs = []
    for row in table.itertuples(index=False):
        path = Path(row.file) if Path(row.file).is_absolute() else manifest.parent / row.file
        dataset = getattr(row, "dataset", "") if isinstance(getattr(row, "dataset", ""), str) else ""
        location = f"{path.resolve()}::{dataset}" if dataset else str(path.resolve())
        refs.append(RecordRef(row.file, location, fs=float(row.sampling_rate), leads=str(row.leads)))
    return refs


def read(raw: Path, ref: RecordRef) -> RawRecord:
    if not ref.leads:
        return read_wfdb(raw / ref.location)
    path_text, _, dataset = ref.location.partition("::")
    path = Path(path_text)
    if path.suffix not in ARRAY_SUFFIXES:
        raise ValueError(f"{path.name}: expected one of {ARRAY_SUFFIXES} in the manifest")
    leads = [name.strip() for name in ref.leads.split(",")]
    if not (ref.fs > 0 and math.isfinite(ref.fs)):
        raise ValueError(f"sampling_rate must be a positive number of Hz, got {ref.fs}")
    signal = np.load(path, allow_pickle=False) if path.suffix == ".npy" else read_hdf5(path, dataset)
    if signal.ndim != 2 or len(leads) not in signal.shape:
        raise ValueError(f"array of shape {signal.shape} does not hold the {len(leads)} leads {leads}")
    if signal.shape[1] != len(leads):
        signal = signal.T
    return RawRecord(np.asarray(signal, dtype=np.float64), ref.fs, leads)


def read_hdf5(path: Path, dataset: str) -> np.ndarray:
    with h5py.File(path, "r") as file:
        if not dataset:
            names: list[str] = []
            file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
            if len(names) != 1:
                raise ValueError(f"holds {len(names)} datasets {names[:5]}; name one in the manifest's dataset column")
            dataset = names[0]
        return np.asarray(file[dataset])

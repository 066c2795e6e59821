"""PTB-XL reader: records listed in `ptbxl_database.csv` (CSV order, i.e. by ecg_id).

Mirrors ECG-JEPA `data/datasets/ptb_xl.py`; the fold of every record goes into the index so that one
dump serves pre-training (folds 1-8) and evaluation (all folds), and its `patient_id` too (CMSC's positives).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data_prep.sources import SOURCES, read_listing
from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.records import RawRecord, RecordRef, patient_text, read_wfdb

RATES = {500: "filename_hr", 100: "filename_lr"}


def discover(raw: Path, rate: int = 500, folds: Sequence[int] | None = None) -> list[RecordRef]:
    """Records of `ptbxl_database.csv` at `rate` Hz (500: `filename_hr`, 100: `filename_lr`)."""
    if rate not in RATES:
        raise DataPrepError(f"PTB-XL rate must be one of {sorted(RATES)}, got {rate}")
    csv = raw / "ptbxl_database.csv"
    if not csv.is_file():
        raise DataPrepError(f"{csv} not found; expected {SOURCES['ptbxl'].layout}")
    records_dir = raw / f"records{rate}"
    if not records_dir.is_dir():
        hint = " (this copy has records100/: pass --rate 100)" if (raw / "records100").is_dir() else ""
        raise DataPrepError(f"{records_dir} not found{hint}; expected {SOURCES['ptbxl'].layout}")
    column = RATES[rate]
    table = read_listing(csv, ["ecg_id", "strat_fold", "patient_id", column], "ptbxl")
    if folds:
        table = table[table["strat_fold"].isin(list(folds))]
    rows = table[["ecg_id", "strat_fold", column, "patient_id"]].itertuples(index=False)
    return [
        RecordRef(int(ecg_id), str(path), int(fold), patient=patient_text(patient))
        for ecg_id, fold, path, patient in rows
    ]


def read(raw: Path, ref: RecordRef) -> RawRecord:
    return read_wfdb(raw / ref.location)

"""PTB-XL reader: records listed in `ptbxl_database.csv` (CSV order, i.e. by ecg_id).

Mirrors ECG-JEPA `data/datasets/ptb_xl.py`; the fold of every record goes into the index so that one
dump serves pre-training (folds 1-8) and evaluation (all folds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data_prep.sources import SOURCES
from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.records import RawRecord, RecordRef, read_wfdb

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
    table = pd.read_csv(csv, usecols=["ecg_id", "strat_fold", column])
    if folds:
        table = table[table["strat_fold"].isin(list(folds))]
    return [
        RecordRef(int(ecg_id), str(path), int(fold))
        for ecg_id, fold, path in table[["ecg_id", "strat_fold", column]].itertuples(index=False)
    ]


def read(raw: Path, ref: RecordRef) -> RawRecord:
    return read_wfdb(raw / ref.location)

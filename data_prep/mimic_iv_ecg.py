"""MIMIC-IV-ECG reader: records listed in `record_list.csv`, column `path` (CSV order).

Mirrors ECG-JEPA `data/datasets/mimic_iv_ecg.py`. The headers list aVF before aVL; leads are matched
by name, so the dump is in canonical order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data_prep.sources import SOURCES
from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.records import RawRecord, RecordRef, read_wfdb


def discover(raw: Path) -> list[RecordRef]:
    """One record per row of `record_list.csv`; the record id is its `path`."""
    csv = raw / "record_list.csv"
    if not csv.is_file():
        raise DataPrepError(f"{csv} not found; expected {SOURCES['mimic_iv_ecg'].layout}")
    paths = pd.read_csv(csv, usecols=["path"], dtype={"path": str})["path"]
    return [RecordRef(path, path) for path in paths]


def read(raw: Path, ref: RecordRef) -> RawRecord:
    return read_wfdb(raw / ref.location)

"""MIMIC-IV-ECG reader: records listed in `record_list.csv`, column `path` (CSV order).

Mirrors ECG-JEPA `data/datasets/mimic_iv_ecg.py`. The headers list aVF before aVL; leads are matched
by name, so the dump is in canonical order.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.sources import read_listing
from ecgjepa.core.records import RawRecord, RecordRef, patient_text, read_wfdb


def discover(raw: Path) -> list[RecordRef]:
    """One record per row of `record_list.csv`; the record id is its `path`, the patient its `subject_id`."""
    table = read_listing(raw / "record_list.csv", ["path", "subject_id"], "mimic_iv_ecg", dtype=str)
    return [
        RecordRef(path, path, patient=patient_text(subject))
        for path, subject in table[["path", "subject_id"]].itertuples(index=False)
    ]


def read(raw: Path, ref: RecordRef) -> RawRecord:
    return read_wfdb(raw / ref.location)

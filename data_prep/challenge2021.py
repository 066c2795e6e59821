"""PhysioNet/CinC Challenge 2021 reader (Chapman-Shaoxing, CPSC, CPSC-Extra, Georgia, Ningbo, PTB,
St-Petersburg): every `*.hea` below the source folder.

Mirrors ECG-JEPA `data/datasets/challenge.py`.
"""

from __future__ import annotations

from pathlib import Path

from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.manifest import wfdb_records
from ecgjepa.core.records import RawRecord, RecordRef, read_wfdb


def discover(raw: Path) -> list[RecordRef]:
    """All headers found recursively, sorted by their path relative to `raw`.

    The record id is that relative path without the `.hea` suffix (e.g. `g1/E00001`).
    """
    # NOTE(parity): the original keeps glob order (filesystem dependent); sorting makes dumps reproducible.
    refs = wfdb_records(raw)
    if not refs:
        raise DataPrepError(
            f"no WFDB header (*.hea) found under {raw}; expected a Challenge 2021 source folder "
            "holding '<record>.hea' + '<record>.mat' pairs at any depth"
        )
    return refs


def read(raw: Path, ref: RecordRef) -> RawRecord:
    return read_wfdb(raw / ref.location)

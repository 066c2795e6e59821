"""PhysioNet/CinC Challenge 2021 reader (Chapman-Shaoxing, CPSC, CPSC-Extra, Georgia, Ningbo, PTB,
St-Petersburg): every `*.hea` below the source folder.

Mirrors ECG-JEPA `data/datasets/challenge.py`.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.records import DataPrepError, RawRecord, RecordRef, read_wfdb


def discover(raw: Path) -> list[RecordRef]:
    """All headers found recursively, sorted by their path relative to `raw`.

    The record id is that relative path without the `.hea` suffix (e.g. `g1/E00001`).
    """
    # NOTE(parity): the original keeps glob order (filesystem dependent); sorting makes dumps reproducible.
    names = sorted(path.relative_to(raw).with_suffix("").as_posix() for path in raw.rglob("*.hea"))
    if not names:
        raise DataPrepError(
            f"no WFDB header (*.hea) found under {raw}; expected a Challenge 2021 source folder "
            "holding '<record>.hea' + '<record>.mat' pairs at any depth"
        )
    return [RecordRef(name, name) for name in names]


def read(raw: Path, ref: RecordRef) -> RawRecord:
    return read_wfdb(raw / ref.location)

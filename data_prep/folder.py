"""A folder of one's own records: WFDB records (``.hea`` + ``.dat``/``.mat``) anywhere below it, and array files
(``.npy``, ``.h5``) listed in a manifest CSV (columns: :mod:`ecgjepa.core.manifest`)."""

from __future__ import annotations

from pathlib import Path

from ecgjepa.core.manifest import folder_records
from ecgjepa.core.records import RawRecord, RecordRef, read_record


def discover(raw: Path, manifest: Path | None = None) -> list[RecordRef]:
    """Every WFDB header below ``raw`` (record id: its path relative to ``raw``, sorted), then the manifest's
    array files in the manifest's order (record id: the ``file`` entry)."""
    return folder_records(raw, manifest)


def read(raw: Path, ref: RecordRef) -> RawRecord:
    return read_record(raw, ref)

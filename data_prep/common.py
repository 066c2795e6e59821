"""Dumping the public sources and folders of one's own records (the engine: :mod:`ecgjepa.core.dump_writer`, the
format: :mod:`ecgjepa.core.dump_format`).

Each public source's module (``ptbxl``, ``mimic_iv_ecg``, ``code15``, ``challenge2021``, ``folder``) discovers its
raw records; this module hands them to the writer with the source's spec and reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_prep import challenge2021, code15, folder, mimic_iv_ecg, ptbxl
from data_prep.sources import SOURCES, find_source_dir
from ecgjepa.core.dump_writer import DumpResult, Log, dump_records
from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.records import RecordRef, SourceSpec, folder_spec

READERS = {
    "ptbxl": ptbxl,
    "mimic_iv_ecg": mimic_iv_ecg,
    "code15": code15,
    "challenge2021": challenge2021,
    "folder": folder,
}


def public_records(spec: SourceSpec, raw: Path, rate: int, folds: Sequence[int] | None) -> tuple[list[RecordRef], dict]:
    """The records of a public source and the options its dump records in meta.json (PTB-XL: rate and folds)."""
    if spec.reader == "ptbxl":
        return ptbxl.discover(raw, rate=rate, folds=folds), {"rate": rate, "folds": sorted(folds) if folds else None}
    return READERS[spec.reader].discover(raw), {}


def checked_raw_dir(raw: Path, spec: SourceSpec) -> Path:
    raw = Path(raw).resolve()
    if not raw.is_dir():
        raise DataPrepError(f"raw directory {raw} not found; expected {spec.layout}")
    return raw


def dump_source(
    slug: str, raw: Path, out: Path, *, rate: int = 500, folds: Sequence[int] | None = None, **engine: Any
) -> DumpResult:
    """Dump public source ``slug`` from its raw folder ``raw`` into ``out/<slug>/`` (resumable, idempotent).

    Args:
        rate: PTB-XL only, 500 (`filename_hr`) or 100 (`filename_lr`, resampled to 500 Hz).
        folds: PTB-XL only, keep these `strat_fold`s (default all).
        **engine: see :func:`~ecgjepa.core.dump_writer.dump_records` (workers, chunk_size, force, progress, log).
    """
    spec = SOURCES[slug]
    raw = checked_raw_dir(raw, spec)
    refs, options = public_records(spec, raw, rate, folds)
    return dump_records(spec, raw, out, refs, read=READERS[spec.reader].read, options=options, **engine)


def dump_folder(
    name: str, raw: Path, out: Path, *, manifest: Path | None = None, min_seconds: float = 10.0, **engine: Any
) -> DumpResult:
    """Dump a folder of one's own records (WFDB below ``raw``, array files in ``manifest``) as ``out/<name>/``."""
    if name in SOURCES:
        raise DataPrepError(f"--name {name} is one of the public sources; choose another name for your corpus")
    spec = folder_spec(name, min_seconds)
    raw = checked_raw_dir(raw, spec)
    return dump_records(spec, raw, out, folder.discover(raw, manifest), read=folder.read, **engine)


def dump_all(root: Path, out: Path, *, log: Log = print, **kwargs: Any) -> list[tuple[str, DumpResult | str]]:
    """Dump every source whose folder exists under `root` (names in `SourceSpec.folders`).

    A source that fails as a whole (e.g. missing CSV) is reported and the others still run.
    Returns `(slug, result or error message)` for every source found.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataPrepError(f"raw root {root} not found; expected sub-folders {_expected_folders()}")
    outcomes: list[tuple[str, DumpResult | str]] = []
    for slug, spec in SOURCES.items():
        source_dir = find_source_dir(root, spec)
        if source_dir is None:
            log(f"{slug}: no folder {' or '.join(spec.folders)} under {root}, skipped")
            continue
        try:
            outcomes.append((slug, dump_source(slug, source_dir, out, log=log, **kwargs)))
        except DataPrepError as error:
            log(f"{slug}: error: {error}")
            outcomes.append((slug, str(error)))
    if not outcomes:
        raise DataPrepError(f"no source folder found under {root}; expected any of {_expected_folders()}")
    return outcomes


def _expected_folders() -> str:
    return ", ".join(spec.folders[0] for spec in SOURCES.values())

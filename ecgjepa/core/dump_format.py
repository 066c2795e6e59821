"""The dump format: what ``python -m data_prep`` writes under ``<data_dir>/<source>/`` and everything else reads.

* ``signals.npy``: float16 ``(total_samples, 12)``, all records concatenated along time, 500 Hz, canonical lead
  order (I, II, III, AVR, AVL, AVF, V1-V6), NaN-interpolated, not normalised. Memory-map it.
* ``index.csv``: :data:`INDEX_COLUMNS`, one row per kept record in dump order; ``start`` / ``length`` are rows of
  ``signals.npy``; ``fold`` is PTB-XL's ``strat_fold``, empty otherwise; ``patient`` is the source's patient id
  (:class:`~ecgjepa.core.records.RecordRef`), empty where it gives none (a dump without the column lists none).
* ``rejects.csv``: :data:`REJECTS_COLUMNS` for every record that could not be dumped.
* ``labels.csv`` (only where the WFDB headers carry ``# Dx:`` lines, as the Challenge 2020/2021 sources do):
  :data:`LABELS_COLUMNS`, the comma-separated SNOMED CT codes of every kept record.
* ``meta.json``: :data:`META_KEYS`; the per-lead mean / std are in canonical order, accumulated in float64, the
  population std (``std_ddof`` 0). It is written last and marks a complete dump.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ecgjepa.core.records import RecordRef

SIGNALS_FILE = "signals.npy"
INDEX_FILE = "index.csv"
REJECTS_FILE = "rejects.csv"
META_FILE = "meta.json"
LABELS_FILE = "labels.csv"
DUMP_FILES = (SIGNALS_FILE, INDEX_FILE, REJECTS_FILE, META_FILE)
PARTS_DIR = "parts"

INDEX_COLUMNS = ("record_id", "source", "start", "length", "fold", "fs_original", "patient")
REQUIRED_INDEX_COLUMNS = ("record_id", "start", "length")
REJECTS_COLUMNS = ("record_id", "reason")
LABELS_COLUMNS = ("record_id", "dx")
META_KEYS = (
    "source",
    "sampling_frequency",
    "leads",
    "num_records",
    "total_samples",
    "dtype",
    "mean",
    "std",
    "std_ddof",
    "stats_folds",
    "num_rejected",
    "ecgjepa_version",
    "created_by",
    "raw_dir",
    "options",
)


def prepare_command(source: str, data_dir: str | Path) -> str:
    """The command that creates the dump of ``source`` under ``data_dir`` from its raw release in RAW_DIR."""
    return f"python -m data_prep {source} --raw RAW_DIR --out {data_dir}"


def record_fold(record_id: str, num_folds: int = 10) -> int:
    """A fold in 1..num_folds that depends only on the record's file name (its id without folders), so a record
    lands in the same fold whether it was dumped as a public source or from a folder of one's own."""
    name = PurePosixPath(str(record_id).replace("\\", "/")).name
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % num_folds + 1


def records_digest(refs: Sequence[RecordRef]) -> str:
    """A digest of a record list: a dump (or its parts) of another list is not reused."""
    digest = hashlib.sha256()
    for ref in refs:
        digest.update(repr(tuple(ref)).encode())
    return digest.hexdigest()

"""Which records a command reads: a folder of WFDB records, a manifest CSV of array files, or an (N, 12, T) ``.npy``.

Manifest columns: ``file`` (relative to the manifest's folder, or absolute), ``sampling_rate`` (Hz) and ``leads``
(the lead names in the array's order, comma-separated, e.g. ``I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6``), an
optional ``dataset`` (the HDF5 dataset to read) and an optional ``patient`` (the patient recorded: the dump lists it,
and CMSC counts records of one patient as positives). An array is (samples, leads) or (leads, samples); an HDF5 file
holds one dataset or names it in the ``dataset`` column. Every value is checked against its column's domain, and a
value outside it stops with one message naming the file, line and column.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.leads import CANONICAL_LEADS, unknown_leads
from ecgjepa.core.records import RecordRef, join_location, load_npy, patient_text

MANIFEST_COLUMNS = ("file", "sampling_rate", "leads")
ARRAY_COLUMNS = ("sampling_rate", "leads", "dataset")


class TableError(DataPrepError, ValueError):
    """A CSV given by the user holds a value outside its column's domain (the message names file, line, column)."""


def line_of(position: int) -> int:
    """The file line of data row ``position`` (the header is line 1)."""
    return position + 2


def read_table(path: Path, what: str, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV file as a table (``text_columns`` kept as text), or a :class:`TableError` naming the file."""
    if not path.is_file():
        raise TableError(f"{what} {path} not found")
    try:
        return pd.read_csv(path, dtype=dict.fromkeys(text_columns, str))
    except (ValueError, UnicodeDecodeError) as err:
        raise TableError(f"{path}: not a readable CSV: {err}") from None


def check_column(path: Path, table: pd.DataFrame, column: str, check: Callable[[Any], str | None]) -> None:
    """Apply ``check`` (a value -> the reason it is wrong, or None) to each row; the first wrong value stops with
    a message naming the file, line and column (the line from the row's label: a table as read, or a part of it)."""
    for position, value in zip(table.index, table[column].tolist(), strict=True):
        reason = check(value)
        if reason is not None:
            raise TableError(f"{path}: line {line_of(position)}, column {column!r}: {reason}, got {value!r}")


def positive_number(value: Any) -> str | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "expected a positive number"
    return None if math.isfinite(number) and number > 0 else "expected a positive number"


def lead_names(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "expected comma-separated lead names"
    unknown = unknown_leads(value.split(","))
    if unknown:
        return f"unknown lead(s) {unknown}; expected names among {list(CANONICAL_LEADS)}"
    return None


def optional_text(value: Any) -> str | None:
    return (
        None
        if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value))
        else ("expected a name or nothing")
    )


def check_array_columns(path: Path, table: pd.DataFrame) -> None:
    """The sampling rate, lead names and optional HDF5 dataset of the array files a table lists."""
    check_column(path, table, "sampling_rate", positive_number)
    check_column(path, table, "leads", lead_names)
    if "dataset" in table.columns:
        check_column(path, table, "dataset", optional_text)


def array_ref(record_id: str, file: Path, row: dict[str, Any]) -> RecordRef:
    """The reference of an array file listed in a manifest or labels CSV row (columns already checked)."""
    dataset = row.get("dataset")
    item = dataset if isinstance(dataset, str) else ""
    return RecordRef(
        record_id,
        join_location(file, item),
        fs=float(row["sampling_rate"]),
        leads=str(row["leads"]),
        patient=patient_text(row.get("patient")),
    )


def read_manifest(manifest: Path) -> list[RecordRef]:
    """The array files a manifest lists, in its order (record id: the ``file`` entry)."""
    table = read_table(manifest, "manifest", ("file", "leads", "dataset", "patient"))
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise TableError(f"{manifest}: missing column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    check_column(manifest, table, "file", lambda v: None if isinstance(v, str) and v.strip() else "expected a file")
    check_array_columns(manifest, table)
    refs = []
    for row in table.to_dict("records"):
        path = Path(row["file"]) if Path(row["file"]).is_absolute() else manifest.parent / row["file"]
        refs.append(array_ref(row["file"], path.resolve(), row))
    return refs


def wfdb_records(raw: Path) -> list[RecordRef]:
    """Every WFDB header below ``raw``, sorted by its path relative to ``raw`` (the record id, without ``.hea``)."""
    names = sorted(path.relative_to(raw).with_suffix("").as_posix() for path in raw.rglob("*.hea"))
    return [RecordRef(name, name) for name in names]


def folder_records(raw: Path, manifest: Path | None = None) -> list[RecordRef]:
    """Every WFDB record below ``raw``, then the manifest's array files in the manifest's order."""
    refs = wfdb_records(raw)
    if manifest is not None:
        refs += read_manifest(Path(manifest))
    if not refs:
        raise DataPrepError(
            f"no record found under {raw}: expected WFDB records (<name>.hea + .dat/.mat) at any depth, or "
            f"array files listed with --manifest (a CSV with columns {', '.join(MANIFEST_COLUMNS)})"
        )
    return refs


def input_records(path: Path, fs: float | None) -> tuple[list[RecordRef], Path]:
    """What a command reads from ``input=``: the references and the folder they are relative to.

    A folder (WFDB records at any depth), a manifest ``.csv``, or an (N, 12, T) ``.npy`` in the canonical lead
    order at ``fs`` Hz (default 500).
    """
    if path.is_dir():
        refs = wfdb_records(path)
        if not refs:
            raise FileNotFoundError(
                f"input={path} is neither a .npy file nor a folder with WFDB records: no record found under {path} "
                "(WFDB: <name>.hea + .dat/.mat at any depth; array files: list them in a manifest .csv)"
            )
        return refs, path
    if path.suffix == ".csv":
        return read_manifest(path), path.parent
    if path.suffix == ".npy":
        x = load_npy(path)
        if x.ndim != 3 or x.shape[1] != len(CANONICAL_LEADS):
            raise ValueError(f"input={path} has shape {x.shape}; expected (N, 12, T)")
        leads = ",".join(CANONICAL_LEADS)
        refs = [
            RecordRef(f"{path.name}[{i}]", join_location(path.resolve(), i), fs=fs or 500.0, leads=leads)
            for i in range(len(x))
        ]
        return refs, path.parent
    raise FileNotFoundError(f"input={path} is neither a folder, a manifest .csv nor a .npy file")

"""The one reader of raw ECG records, and the preparation every record gets before it is dumped or used.

A record is a WFDB record (``<name>.hea`` + ``.dat``/``.mat``, the only format read through ``wfdb``) or an array
file (``.npy``, ``.h5``) with its sampling rate and lead names given beside it (a manifest's row, a labels CSV's
row). Preparation mirrors the original's ``scripts/dump_data.py`` + ``scripts/preprocess_data_dump.py`` and the
load-time steps of ``data/utils.py`` (ECG-JEPA): leads matched by name, NaNs interpolated, FFT-resampled to 500 Hz.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import wfdb

from ecgjepa.core.errors import UserError
from ecgjepa.core.leads import CANONICAL_LEADS, lead_columns
from ecgjepa.core.signal import interpolate_nans, remove_baseline_wander, resample

TARGET_FS = 500  # Hz of every dump
# Records per part file are chosen so that one chunk holds about this many 500 Hz samples
# (~24 MB as float16), which bounds memory for 10-s records and 30-min records alike.
CHUNK_SAMPLES = 1_000_000
ARRAY_SUFFIXES = (".npy", ".h5", ".hdf5")
WFDB_SUFFIXES = (".hea", ".dat", ".mat")
# `file::item`: an item inside an array file, the dataset of an HDF5 file or the row of an (N, leads, T) .npy.
LOCATION_SEPARATOR = "::"


def join_location(path: str | Path, item: str | int | None = None) -> str:
    """The location of ``item`` inside the array file ``path`` (the whole file when ``item`` is empty)."""
    return f"{path}{LOCATION_SEPARATOR}{item}" if item not in (None, "") else str(path)


def split_location(location: str) -> tuple[str, str]:
    """``(path, item)`` of a location written by :func:`join_location` (``item`` is '' for a whole file)."""
    path, _, item = location.partition(LOCATION_SEPARATOR)
    return path, item


class RecordRef(NamedTuple):
    """One record to read: picklable and small, so that a record list of a million entries is cheap.

    Attributes:
        record_id: written to index.csv / rejects.csv (ecg_id, exam_id or path relative to the raw dir).
        location: path of the record relative to the raw dir (WFDB: without extension; CODE-15: HDF5 file; an
            array file: see :func:`join_location`).
        fold: PTB-XL `strat_fold`, else None.
        row: CODE-15 row in the HDF5 file (-1 if the exam_id was not found), else -1.
        fs, leads: sampling rate and comma-separated lead names of an array file (WFDB records carry both in
            their header).
        patient: the source's id of the patient recorded (PTB-XL ``patient_id``, MIMIC-IV-ECG ``subject_id``,
            CODE-15 ``patient_id``, a manifest's ``patient``), empty where the source gives none.
    """

    record_id: int | str
    location: str
    fold: int | None = None
    row: int = -1
    fs: float = float("nan")
    leads: str = ""
    patient: str = ""


def patient_text(value: object) -> str:
    """A patient id as the index writes it: ``15709.0`` (pandas reads an id column with gaps as floats) is
    ``15709``; a missing value (None, NaN, empty) is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class RawRecord(NamedTuple):
    """A record as read from disk: `signal` (samples, leads) in physical units, native fs and lead names, and
    the diagnoses its header lists (`# Dx:` SNOMED CT codes of the Challenge 2020/2021 headers), if any."""

    signal: np.ndarray
    fs: float
    leads: Sequence[str]
    dx: tuple[str, ...] = ()


def read_wfdb(path: Path) -> RawRecord:
    """Read a WFDB record (`.hea` + `.dat`/`.mat`) as physical float64 values."""
    signal, fields = wfdb.rdsamp(str(path))
    return RawRecord(signal, float(fields["fs"]), list(fields["sig_name"]), header_dx(fields.get("comments") or []))


def write_wfdb(path: Path, signal: np.ndarray, fs: float, leads: Sequence[str]) -> None:
    """Write ``signal`` (samples, leads) in mV as the WFDB record ``path`` (``.hea`` + 16-bit ``.dat``, 1 µV steps)."""
    wfdb.wrsamp(
        path.name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        p_signal=np.asarray(signal, dtype=np.float64),
        fmt=["16"] * len(leads),
        adc_gain=[1000.0] * len(leads),
        baseline=[0] * len(leads),
        write_dir=str(path.parent),
    )


def header_dx(comments: Sequence[str]) -> tuple[str, ...]:
    """The codes of a header's `Dx:` comment (`# Dx: 164889003,59118001`), in order; () without one."""
    for comment in comments:
        key, _, value = comment.strip().partition(":")
        if key.strip().casefold() == "dx":
            return tuple(code.strip() for code in value.split(",") if code.strip())
    return ()


def load_npy(path: Path) -> np.ndarray:
    """The numeric array in the ``.npy`` file ``path`` (memory-mapped), or a ValueError naming the file."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy array (expected one written by numpy.save): {err}") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected a numeric .npy array, got {getattr(x, 'dtype', type(x).__name__)}")
    return x


def read_hdf5(path: Path, dataset: str) -> np.ndarray:
    """The dataset ``dataset`` of an HDF5 file, or its only dataset when ``dataset`` is empty."""
    with h5py.File(path, "r") as file:
        if not dataset:
            names: list[str] = []
            file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
            if len(names) != 1:
                raise ValueError(f"holds {len(names)} datasets {names[:5]}; name one in the manifest's dataset column")
            dataset = names[0]
        return np.asarray(file[dataset])


def read_array(location: str, fs: float, leads: Sequence[str]) -> RawRecord:
    """An array record: a whole ``.npy``/``.h5`` file, an HDF5 dataset or one row of an (N, leads, T) ``.npy``.
    The array is (samples, leads) or (leads, samples)."""
    path_text, item = split_location(location)
    path = Path(path_text)
    if path.suffix not in ARRAY_SUFFIXES:
        raise ValueError(f"{path.name}: expected one of {ARRAY_SUFFIXES}")
    if not (fs > 0 and math.isfinite(fs)):
        raise ValueError(f"sampling_rate must be a positive number of Hz, got {fs}")
    if path.suffix == ".npy":
        signal = load_npy(path)
        signal = signal[int(item)] if item else signal
    else:
        signal = read_hdf5(path, item)
    if signal.ndim != 2 or len(leads) not in signal.shape:
        raise ValueError(f"array of shape {signal.shape} does not hold the {len(leads)} leads {list(leads)}")
    if signal.shape[1] != len(leads):
        signal = signal.T
    return RawRecord(np.asarray(signal, dtype=np.float64), fs, list(leads))


def read_record(base: str | Path, ref: RecordRef) -> RawRecord:
    """Read ``ref`` (relative to ``base``): an array file when the reference names its leads, else WFDB."""
    if ref.leads:
        path, item = split_location(ref.location)
        return read_array(join_location(Path(base) / path, item), ref.fs, [n.strip() for n in ref.leads.split(",")])
    return read_wfdb(Path(base) / ref.location)


@dataclass(frozen=True)
class SourceSpec:
    """How the records of one source are prepared and dumped.

    Attributes:
        slug: dump name and CLI name.
        reader: the module of `data_prep` that discovers the raw records of a public source ('folder': one's own).
        fs: native sampling rate in Hz (WFDB headers take precedence when they differ).
        leads: native lead order.
        duration_s: typical record duration in seconds (sizes the default chunk).
        folders: accepted folder names under the root given to `python -m data_prep all`.
        layout: expected raw layout, quoted in error messages.
        remove_baseline: NaN-interpolate and high-pass at native fs before resampling (the original's CODE-15 and
            St-Petersburg classes).
        min_length: records shorter than this many 500 Hz samples are rejected.
        metadata_files: raw metadata files copied next to the dump (PTB-XL: labels and folds).
        stats_folds: the folds whose records the dump's per-lead statistics cover (None: every record).
        required_leads: the leads every record must hold; the others may be absent and are dumped as zeros
            (``leads=`` of the commands that read one's own records).
    """

    slug: str
    reader: str
    fs: float
    leads: tuple[str, ...]
    duration_s: float
    folders: tuple[str, ...]
    layout: str
    remove_baseline: bool = False
    min_length: int = 1
    metadata_files: tuple[str, ...] = ()
    stats_folds: tuple[int, ...] | None = None
    required_leads: tuple[str, ...] = CANONICAL_LEADS

    @property
    def default_chunk_size(self) -> int:
        return max(1, int(CHUNK_SAMPLES // (self.duration_s * TARGET_FS)))


FOLDER_LAYOUT = (
    "a folder of WFDB records (<name>.hea + .dat/.mat) at any depth, and/or array files (.npy, .h5) listed in a "
    "manifest CSV (--manifest) with columns file, sampling_rate, leads"
)


def folder_spec(name: str, min_seconds: float, leads: tuple[str, ...] = CANONICAL_LEADS) -> SourceSpec:
    """The spec of a folder of one's own records dumped as source ``name``: any sampling rate, lead order and
    length; records shorter than ``min_seconds`` or without one of ``leads`` are rejected."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--name: expected letters, digits, '_' or '-', got {name!r}")
    return SourceSpec(
        name,
        "folder",
        float("nan"),
        CANONICAL_LEADS,
        10.0,
        (),
        FOLDER_LAYOUT,
        min_length=max(1, round(min_seconds * TARGET_FS)),
        required_leads=leads,
    )


def prepare_record(raw: RawRecord, spec: SourceSpec) -> np.ndarray:
    """Turn a raw record into the dumped form: float16, (samples at 500 Hz, 12), canonical lead order.

    Order of operations as in the original: cast to float16, [CODE-15 / St-Petersburg: interpolate
    NaNs and remove baseline wander at native fs], interpolate NaNs, FFT-resample to 500 Hz, reorder. A lead the
    record lacks outside ``spec.required_leads`` is dumped as zeros. Raises `ValueError` with a readable reason
    when the record must be rejected.
    """
    # NOTE(parity): leads are matched by the header's names; the original indexes them by each source's fixed
    # lead order (ECG-JEPA data/datasets/*.py).
    columns = lead_columns(raw.leads, spec.required_leads)
    if raw.signal.ndim != 2 or raw.signal.shape[0] == 0:
        raise ValueError(f"no samples (signal shape {raw.signal.shape})")
    x = raw.signal.astype(np.float16)
    if spec.remove_baseline:
        x = remove_baseline_wander(interpolate_nans(x), raw.fs)
    x = resample(interpolate_nans(x), raw.fs, TARGET_FS)
    held = columns >= 0
    if held.all():
        x = np.ascontiguousarray(x[:, columns])
    else:
        out = np.zeros((x.shape[0], len(CANONICAL_LEADS)), dtype=x.dtype)
        out[:, held] = x[:, columns[held]]
        x = out
    if x.shape[0] < spec.min_length:
        raise ValueError(f"too short: {x.shape[0]} samples at {TARGET_FS} Hz < {spec.min_length}")
    if not np.isfinite(x).all():
        raise ValueError("non-finite values after the float16 cast (amplitude out of float16 range)")
    return x


def reject_reason(error: BaseException, base: Path | None = None) -> str:
    """One line saying why a record was rejected (paths below ``base`` relative to it), at most 500 characters."""
    reason = " ".join(f"{type(error).__name__}: {error}".split())
    if base is not None:
        reason = reason.replace(f"{base}{os.sep}", "")
    return reason[:500]


def prepared_records(
    refs: Iterable[RecordRef], base: Path, spec: SourceSpec, rejects: list[tuple[str, str]]
) -> Iterator[tuple[str, np.ndarray]]:
    """(record id, prepared record) of every usable record of ``refs``; the others are appended to ``rejects``
    as (record id, reason), and the rest still come."""
    for ref in refs:
        try:
            yield str(ref.record_id), prepare_record(read_record(base, ref), spec)
        except (ValueError, OSError, KeyError, UserError) as err:
            rejects.append((str(ref.record_id), reject_reason(err)))

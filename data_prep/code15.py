"""CODE-15% reader: exams listed in `exams.csv` (CSV order), tracings from `exams_partK.hdf5`.

Mirrors ECG-JEPA `data/datasets/code15.py`. Only "complete" exams are kept (ECG-JEPA scripts/dump_data.py): every lead's
non-zero extent has the same length and the overall extent covers all 4096 samples. Shorter exams
zero-padded to 4096 are rejected, not trimmed. The all-zero row with exam_id 0 that ends every part is
not listed in `exams.csv` and is therefore never read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np

from data_prep.sources import SOURCES, read_listing
from ecgjepa.core.records import RawRecord, RecordRef, patient_text

SPEC = SOURCES["code15"]
NUM_SAMPLES = 4096


def discover(raw: Path) -> list[RecordRef]:
    """One record per row of `exams.csv`, located by `trace_file` and the part's `exam_id` dataset; the patient is
    its `patient_id`."""
    columns = ["exam_id", "trace_file", "patient_id"]
    exams = read_listing(
        raw / "exams.csv", columns, "code15", {"exam_id": "int64", "trace_file": str, "patient_id": str}
    )
    rows: dict[str, dict[int, int]] = {}
    for trace_file in exams["trace_file"].unique():
        part = raw / trace_file
        if part.is_file():
            with h5py.File(part, "r") as f:
                exam_ids = f["exam_id"][()]
            rows[trace_file] = {int(exam_id): row for row, exam_id in enumerate(exam_ids)}
    return [
        RecordRef(
            int(exam_id),
            trace_file,
            None,
            rows.get(trace_file, {}).get(int(exam_id), -1),
            patient=patient_text(patient),
        )
        for exam_id, trace_file, patient in exams[columns].itertuples(index=False)
    ]


@lru_cache(maxsize=32)
def _open(path: str, mtime_ns: int) -> h5py.File:
    # One handle per part and process: exams.csv order jumps between parts. mtime keys out stale handles.
    return h5py.File(path, "r")


def is_complete(tracing: np.ndarray) -> bool:
    """The original's rule on a (4096, 12) tracing: equal per-lead non-zero extents spanning all samples."""
    extents = []
    for lead in tracing.T:
        nonzero = np.flatnonzero(lead)
        extents.append((nonzero[0], nonzero[-1] + 1) if nonzero.size else (0, 0))
    lengths = {stop - start for start, stop in extents}
    overall = max(stop for _, stop in extents) - min(start for start, _ in extents)
    return len(lengths) == 1 and overall == tracing.shape[0] == NUM_SAMPLES


def read(raw: Path, ref: RecordRef) -> RawRecord:
    path = raw / ref.location
    if not path.is_file():
        raise FileNotFoundError(f"trace file {ref.location} not found")
    if ref.row < 0:
        raise KeyError(f"exam_id {ref.record_id} not in {ref.location}")
    tracing = _open(str(path), path.stat().st_mtime_ns)["tracings"][ref.row]
    if not is_complete(tracing):
        raise ValueError("incomplete exam (zero-padded or partly zero leads)")
    return RawRecord(tracing, SPEC.fs, SPEC.leads)

"""The dump writer: records -> ``OUT/<slug>/`` in the format of :mod:`ecgjepa.core.dump_format`.

Replaces ECG-JEPA `scripts/dump_data.py` (+ `preprocess_data_dump.py`, `compute_mean_std.py`), which built each
dump in RAM, in native fs and lead order. Records are processed in chunks of K records by a process pool; each
chunk becomes a part file written atomically, so memory does not depend on the corpus size and a killed run resumes
from the finished parts. The parts are then streamed into the final files and removed; ``meta.json`` is written
last and marks a complete dump. One bad record never stops a dump: it goes to ``rejects.csv`` with the reason. A
dump left with no usable record is an error that names the reasons.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from ecgjepa.core.dump_format import (
    DUMP_FILES,
    INDEX_COLUMNS,
    INDEX_FILE,
    LABELS_COLUMNS,
    LABELS_FILE,
    META_FILE,
    PARTS_DIR,
    REJECTS_COLUMNS,
    REJECTS_FILE,
    SIGNALS_FILE,
    records_digest,
)
from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.files import atomic_write, copy_atomic, ensure_writable_dir, save_npz_atomic, write_text_atomic
from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.core.records import (
    TARGET_FS,
    RawRecord,
    RecordRef,
    SourceSpec,
    prepare_record,
    read_record,
    reject_reason,
)
from ecgjepa.core.version import VERSION

NUM_LEADS = len(CANONICAL_LEADS)
MAX_IN_FLIGHT_CHUNKS = 2
BLOCK_ROWS = 1 << 18

Log = Callable[[str], None]
Reader = Callable[[Path, RecordRef], RawRecord]
# (signal, None, fs, dx) for a kept record, (None, reason, fs, "") for a rejected one; dx: the header's
# comma-separated diagnosis codes.
Result = tuple[np.ndarray | None, str | None, float, str]


@dataclass(frozen=True)
class DumpResult:
    """Outcome of one source: where, how many records kept / rejected, wall time, whether it was skipped."""

    out_dir: Path
    num_records: int
    num_rejected: int
    seconds: float
    skipped: bool = False


class LeadStats:
    """Running per-lead count, mean and sum of squared deviations over (samples, leads) blocks (Chan et al.'s
    merge of per-block moments, in float64)."""

    def __init__(self, num_leads: int = NUM_LEADS) -> None:
        self.count = 0
        self.mean = np.zeros(num_leads)
        self.m2 = np.zeros(num_leads)

    def update(self, x: np.ndarray) -> None:
        """Add the rows of `x: (samples, leads)`, converted to float64 a block at a time."""
        for start in range(0, x.shape[0], BLOCK_ROWS):
            block = np.asarray(x[start : start + BLOCK_ROWS], dtype=np.float64)
            n = block.shape[0]
            block_mean = block.mean(axis=0)
            delta = block_mean - self.mean
            total = self.count + n
            self.m2 += ((block - block_mean) ** 2).sum(axis=0) + delta**2 * (self.count * n / total)
            self.mean += delta * (n / total)
            self.count = total

    def result(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, population std) per lead, or None if no sample was added."""
        if self.count == 0:
            return None
        return self.mean.copy(), np.sqrt(self.m2 / self.count)


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def process_record(spec: SourceSpec, read: Reader, raw: Path, ref: RecordRef) -> Result:
    """Read and prepare one record in a worker: `(signal, None, fs, dx)` or `(None, reason, fs, "")`."""
    fs = math.nan
    try:
        record = read(raw, ref)
        fs = record.fs
        return prepare_record(record, spec), None, fs, ",".join(record.dx)
    except Exception as error:  # one bad record must never abort the dump: it goes to rejects.csv
        return None, reject_reason(error, raw), fs, ""


def dump_records(
    spec: SourceSpec,
    raw: Path,
    out: Path,
    refs: Sequence[RecordRef],
    *,
    read: Reader = read_record,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    chunk_size: int | None = None,
    force: bool = False,
    progress: bool = True,
    log: Log = print,
) -> DumpResult:
    """Dump the records ``refs`` (relative to the raw folder ``raw``) as source ``spec.slug`` into
    ``out/<slug>/``: resumable, idempotent.

    Args:
        read: reads one reference (a module-level function: it runs in worker processes).
        options: what else the dump depends on, recorded in meta.json (a complete dump with other options or of
            another record list is refused unless ``force``).
        workers: worker processes (default min(4, cpu count)); 1 runs in-process.
        chunk_size: records per part file (default `SourceSpec.default_chunk_size`).
        force: rebuild even if a complete dump exists.
        progress: show a progress bar on stderr.
        log: receives one-line messages.
    """
    started = time.perf_counter()
    raw = Path(raw).resolve()
    if chunk_size is not None and chunk_size < 1:
        raise DataPrepError(f"--chunk-size must be at least 1, got {chunk_size}")
    out_dir = Path(out) / spec.slug
    options = dict(options or {})
    if not force:
        done = _complete_dump(out_dir, raw, options, log)
        if done is not None:
            return done
    refs = list(refs)
    _ensure_writable(out_dir)
    if force:
        _remove_dump(out_dir)
    chunk_size = chunk_size or spec.default_chunk_size
    parts_dir = out_dir / PARTS_DIR
    _prepare_parts_dir(parts_dir, _parts_manifest(spec.slug, raw, options, chunk_size, refs), log)

    chunks = [refs[i : i + chunk_size] for i in range(0, len(refs), chunk_size)]
    todo = [i for i in range(len(chunks)) if not _part_path(parts_dir, i).is_file()]
    if len(todo) < len(chunks):
        log(f"{spec.slug}: resuming, {len(chunks) - len(todo)} of {len(chunks)} parts already done")
    pending_records = sum(len(chunks[i]) for i in todo)
    initial = len(refs) - pending_records
    with tqdm(total=len(refs), initial=initial, desc=spec.slug, unit="rec", disable=not progress) as bar:
        worker = partial(process_record, spec, read, raw)
        _run_chunks(worker, chunks, todo, parts_dir, workers or default_workers(), bar)

    parts = [_part_path(parts_dir, i) for i in range(len(chunks))]
    kept, rejected = _assemble(spec, raw, out_dir, parts, options)
    shutil.rmtree(parts_dir)
    _require_records(out_dir, kept)
    seconds = time.perf_counter() - started
    log(f"{spec.slug}: kept {kept} records, rejected {rejected}, {seconds:.1f} s -> {out_dir}")
    return DumpResult(out_dir, kept, rejected, seconds)


def _complete_dump(out_dir: Path, raw: Path, options: dict[str, Any], log: Log) -> DumpResult | None:
    """The result of a complete dump of the same raw folder and options in ``out_dir``, or None if there is none."""
    if not ((out_dir / META_FILE).is_file() and all((out_dir / name).is_file() for name in DUMP_FILES)):
        return None
    meta = json.loads((out_dir / META_FILE).read_text())
    if meta.get("raw_dir") != str(raw) or meta.get("options") != options:
        raise DataPrepError(
            f"{out_dir} holds a dump of {meta.get('raw_dir')} with options {meta.get('options')}; "
            "pass --force to rebuild it"
        )
    shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)  # left over if a run died after writing meta.json
    _require_records(out_dir, meta["num_records"])
    log(f"{out_dir.name}: {out_dir} is already complete, nothing to do (pass --force to rebuild)")
    return DumpResult(out_dir, meta["num_records"], meta["num_rejected"], 0.0, skipped=True)


def _require_records(out_dir: Path, kept: int) -> None:
    """A dump without a single usable record is an error naming the reasons (its rejects.csv stays for reading)."""
    if kept > 0:
        return
    with open(out_dir / REJECTS_FILE, newline="") as f:
        reasons = Counter(row["reason"] for row in csv.DictReader(f))
    summary = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common(3))
    more = f"; ... ({len(reasons)} different reasons)" if len(reasons) > 3 else ""
    raise DataPrepError(
        f"{out_dir}: no usable record: every record was rejected ({summary or 'no record listed'}{more}); "
        f"see {out_dir / REJECTS_FILE}"
    )


def _ensure_writable(out_dir: Path) -> None:
    try:
        ensure_writable_dir(out_dir)
    except PermissionError as error:
        raise DataPrepError(str(error)) from error


def _remove_dump(out_dir: Path) -> None:
    for name in (*DUMP_FILES, LABELS_FILE):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)


def _parts_manifest(
    slug: str, raw: Path, options: dict[str, Any], chunk_size: int, refs: list[RecordRef]
) -> dict[str, Any]:
    """What the part files depend on; parts from a run with another manifest are discarded."""
    return {
        "source": slug,
        "raw_dir": str(raw),
        "options": options,
        "chunk_size": chunk_size,
        "num_records": len(refs),
        "records_sha256": records_digest(refs),
    }


def _prepare_parts_dir(parts_dir: Path, manifest: dict[str, Any], log: Log) -> None:
    manifest_path = parts_dir / "manifest.json"
    if parts_dir.is_dir():
        if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
            for stale in parts_dir.glob("*.tmp"):
                stale.unlink()
            return
        log(f"discarding part files of a different run in {parts_dir}")
        shutil.rmtree(parts_dir)
    parts_dir.mkdir()
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1))


def _part_path(parts_dir: Path, index: int) -> Path:
    return parts_dir / f"part_{index:06d}.npz"


class Progress(Protocol):
    def update(self, n: int) -> object: ...


def _run_chunks(
    worker: Callable[[RecordRef], Result],
    chunks: list[list[RecordRef]],
    todo: list[int],
    parts_dir: Path,
    workers: int,
    bar: Progress,
) -> None:
    """Process the chunks `todo` and write one part file per chunk, in order."""
    if workers == 1:
        for i in todo:
            _write_part(_part_path(parts_dir, i), chunks[i], [worker(ref) for ref in chunks[i]])
            bar.update(len(chunks[i]))
        return
    # A process pool that raises BrokenProcessPool if a worker dies (multiprocessing.Pool would hang).
    # At most MAX_IN_FLIGHT_CHUNKS chunks are queued, so memory does not grow with the corpus.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context()) as executor:
        in_flight: deque[tuple[int, Iterator[Result]]] = deque()

        def write_oldest() -> None:
            i, results = in_flight.popleft()
            _write_part(_part_path(parts_dir, i), chunks[i], results)
            bar.update(len(chunks[i]))

        for i in todo:
            batch = max(1, len(chunks[i]) // (4 * workers))
            in_flight.append((i, executor.map(worker, chunks[i], chunksize=batch)))
            if len(in_flight) >= MAX_IN_FLIGHT_CHUNKS:
                write_oldest()
        while in_flight:
            write_oldest()


def _write_part(path: Path, refs: list[RecordRef], results: Iterable[Result]) -> None:
    kept: list[tuple[RecordRef, np.ndarray, float, str]] = []
    rejected: list[tuple[RecordRef, str]] = []
    for ref, (signal, reason, fs, dx) in zip(refs, results, strict=True):
        if signal is None:
            rejected.append((ref, reason or "unknown"))
        else:
            kept.append((ref, signal, fs, dx))
    save_npz_atomic(
        path,
        signals=np.concatenate([signal for _, signal, _, _ in kept])
        if kept
        else np.empty((0, NUM_LEADS), dtype=np.float16),
        lengths=np.array([len(signal) for _, signal, _, _ in kept], dtype=np.int64),
        record_ids=np.array([str(ref.record_id) for ref, _, _, _ in kept], dtype=str),
        folds=np.array([-1 if ref.fold is None else ref.fold for ref, _, _, _ in kept], dtype=np.int64),
        fs=np.array([fs for _, _, fs, _ in kept], dtype=np.float64),
        dx=np.array([dx for _, _, _, dx in kept], dtype=str),
        patients=np.array([ref.patient for ref, _, _, _ in kept], dtype=str),
        reject_ids=np.array([str(ref.record_id) for ref, _ in rejected], dtype=str),
        reject_reasons=np.array([reason for _, reason in rejected], dtype=str),
    )


@dataclass
class _Tables:
    """What :func:`_write_tables` found in the parts."""

    kept: int = 0
    rejected: int = 0
    total_samples: int = 0
    any_dx: bool = False


def _assemble(
    spec: SourceSpec, raw: Path, out_dir: Path, parts: list[Path], options: dict[str, Any]
) -> tuple[int, int]:
    """Stream the part files into the final dump files, meta.json last; returns (kept, rejected)."""
    tables = _write_tables(spec, out_dir, parts)
    moments = _write_signals(out_dir / SIGNALS_FILE, parts, tables.total_samples, spec.stats_folds)
    _copy_metadata(spec, raw, out_dir)
    meta = _meta(spec, raw, tables, moments, options)
    write_text_atomic(out_dir / META_FILE, json.dumps(meta, indent=2) + "\n")
    return tables.kept, tables.rejected


def _write_tables(spec: SourceSpec, out_dir: Path, parts: list[Path]) -> _Tables:
    """index.csv, rejects.csv and (where a header had diagnoses) labels.csv."""
    tables = _Tables()
    labels = out_dir / LABELS_FILE
    with (
        atomic_write(out_dir / INDEX_FILE) as index_tmp,
        atomic_write(out_dir / REJECTS_FILE) as rejects_tmp,
        atomic_write(labels) as labels_tmp,
        open(index_tmp, "w", newline="") as index_file,
        open(rejects_tmp, "w", newline="") as rejects_file,
        open(labels_tmp, "w", newline="") as labels_file,
    ):
        index_writer, rejects_writer, labels_writer = map(csv.writer, (index_file, rejects_file, labels_file))
        index_writer.writerow(INDEX_COLUMNS)
        rejects_writer.writerow(REJECTS_COLUMNS)
        labels_writer.writerow(LABELS_COLUMNS)
        for path in parts:
            with np.load(path) as part:
                columns = (
                    part["record_ids"],
                    part["lengths"],
                    part["folds"],
                    part["fs"],
                    part["dx"],
                    part["patients"],
                )
                for record_id, length, fold, fs, dx, patient in zip(*columns, strict=True):
                    fold_text = "" if fold < 0 else int(fold)
                    index_writer.writerow(
                        (record_id, spec.slug, tables.total_samples, int(length), fold_text, f"{fs:g}", patient)
                    )
                    labels_writer.writerow((record_id, dx))
                    tables.any_dx = tables.any_dx or bool(dx)
                    tables.total_samples += int(length)
                tables.kept += len(columns[0])
                rejects_writer.writerows(zip(part["reject_ids"], part["reject_reasons"], strict=True))
                tables.rejected += len(part["reject_ids"])
    if not tables.any_dx:
        labels.unlink()
    return tables


def _write_signals(
    path: Path, parts: list[Path], total_samples: int, stats_folds: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """signals.npy from the parts; returns the per-lead (mean, std) of the records in ``stats_folds`` (all: None).

    Plain sequential writes behind a standard .npy header: a writable memmap would keep every touched page of the
    whole dump in this process's resident set.
    """
    stats = LeadStats(NUM_LEADS)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False}
    with atomic_write(path) as tmp, open(tmp, "wb") as signals_file:
        np.lib.format.write_array_header_1_0(signals_file, {**header, "shape": (total_samples, NUM_LEADS)})
        for part_path in parts:
            with np.load(part_path) as part:
                signals = np.ascontiguousarray(part["signals"], dtype=np.float16)
                signals_file.write(signals.data)
                if stats_folds is None:
                    stats.update(signals)
                else:
                    selected = np.isin(part["folds"], stats_folds)
                    stats.update(signals[np.repeat(selected, part["lengths"])])
    return stats.result()


def _copy_metadata(spec: SourceSpec, raw: Path, out_dir: Path) -> None:
    """The raw metadata files the evaluation reads (PTB-XL's labels and folds): the dump folder is self-contained."""
    for name in spec.metadata_files:
        if (raw / name).is_file():
            copy_atomic(raw / name, out_dir / name)


def _meta(
    spec: SourceSpec,
    raw: Path,
    tables: _Tables,
    moments: tuple[np.ndarray, np.ndarray] | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    return {
        "source": spec.slug,
        "sampling_frequency": TARGET_FS,
        "leads": list(CANONICAL_LEADS),
        "num_records": tables.kept,
        "total_samples": tables.total_samples,
        "dtype": "float16",
        "mean": None if moments is None else moments[0].tolist(),
        "std": None if moments is None else moments[1].tolist(),
        "std_ddof": 0,
        "stats_folds": None if spec.stats_folds is None else list(spec.stats_folds),
        "num_rejected": tables.rejected,
        "ecgjepa_version": VERSION,
        "created_by": "data_prep",
        "raw_dir": str(raw),
        "options": options,
    }

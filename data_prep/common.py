"""Dump engine: raw records -> `OUT/<slug>/{signals.npy, index.csv, rejects.csv, meta.json}`.

Replaces ECG-JEPA `scripts/dump_data.py` (+ `preprocess_data_dump.py`, `compute_mean_std.py`), which
built each dump in RAM, in native fs and lead order. Here:

* `signals.npy`: float16 `(total_samples, 12)`, all records concatenated along time, **500 Hz, canonical
  lead order** (I, II, III, AVR, AVL, AVF, V1-V6), NaN-interpolated (CODE-15 / St-Petersburg also
  high-passed at native fs), **not normalised**. Memory-map it with `np.load(path, mmap_mode="r")`.
* `index.csv`: `record_id, source, start, length, fold, fs_original`, one row per kept record in dump
  order; `start` / `length` are rows of `signals.npy`; `fold` is PTB-XL's `strat_fold`, empty otherwise.
* `rejects.csv`: `record_id, reason` for every record that could not be dumped.
* `labels.csv` (WFDB headers with a `# Dx:` line, as in the Challenge 2020/2021 sources): `record_id, dx`,
  the comma-separated SNOMED CT codes of every kept record.
* `meta.json`: source, sampling_frequency, leads, num_records, total_samples, dtype, per-lead mean / std
  (canonical order, float64 accumulation, population std: std_ddof = 0; PTB-XL over folds 1-8 only),
  stats_folds, num_rejected, ecgjepa_version, created_by, raw_dir, options (PTB-XL: rate and folds).

Records are processed in chunks of K records by a process pool; each chunk becomes a part file written
atomically (temporary name + `os.replace`), so memory does not depend on the corpus size and a killed
run resumes from the finished parts. The parts are then streamed into the final files and removed;
`meta.json` is written last and marks a complete dump.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

import ecgjepa
from data_prep import challenge2021, code15, folder, mimic_iv_ecg, ptbxl
from data_prep.records import DataPrepError, RecordRef, prepare_record
from data_prep.sources import SOURCES, TARGET_FS, SourceSpec, find_source_dir
from data_prep.stats import PTBXL_STATS_FOLDS, LeadStats
from ecgjepa.data.dumps import LABELS_FILE
from ecgjepa.data.signal import CANONICAL_LEADS
from ecgjepa.utils.paths import ensure_writable_dir

READERS = {
    "ptbxl": ptbxl,
    "mimic_iv_ecg": mimic_iv_ecg,
    "code15": code15,
    "challenge2021": challenge2021,
    "folder": folder,
}
DUMP_FILES = ("signals.npy", "index.csv", "rejects.csv", "meta.json")
INDEX_COLUMNS = ("record_id", "source", "start", "length", "fold", "fs_original")
NUM_LEADS = len(CANONICAL_LEADS)
MAX_IN_FLIGHT_CHUNKS = 2

Log = Callable[[str], None]
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


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def process_record(spec: SourceSpec, raw: Path, ref: RecordRef) -> Result:
    """Read and prepare one record in a worker: `(signal, None, fs, dx)` or `(None, reason, fs, "")`."""
    fs = math.nan
    try:
        record = READERS[spec.reader].read(raw, ref)
        fs = record.fs
        return prepare_record(record, spec), None, fs, ",".join(record.dx)
    except Exception as error:  # one bad record must never abort the dump: it goes to rejects.csv
        reason = " ".join(f"{type(error).__name__}: {error}".split()).replace(f"{raw}{os.sep}", "")
        return None, reason[:500], fs, ""


def dump_source(
    slug: str,
    raw: Path,
    out: Path,
    *,
    workers: int | None = None,
    chunk_size: int | None = None,
    force: bool = False,
    rate: int = 500,
    folds: Sequence[int] | None = None,
    progress: bool = True,
    log: Log = print,
    spec: SourceSpec | None = None,
    manifest: Path | None = None,
    refs: list[RecordRef] | None = None,
) -> DumpResult:
    """Dump source `slug` from the raw folder `raw` into `out/<slug>/` (resumable, idempotent).

    Args:
        slug: a key of `SOURCES`.
        raw: the source's raw folder (layout in `SOURCES[slug].layout`).
        out: parent of the dump folder.
        workers: worker processes (default min(4, cpu count)); 1 runs in-process.
        chunk_size: records per part file (default `SourceSpec.default_chunk_size`).
        force: rebuild even if a complete dump exists.
        rate: PTB-XL only, 500 (`filename_hr`) or 100 (`filename_lr`, resampled to 500 Hz).
        folds: PTB-XL only, keep these `strat_fold`s (default all).
        progress: show a progress bar on stderr.
        log: receives one-line messages.
        spec: the source's spec when it is not a public source (a folder of one's own records).
        manifest: folder sources only, a CSV listing array files (see `data_prep.folder`).
        refs: folder sources only, exactly these records (relative to `raw`) instead of all found under it; a
            complete dump of other records is refused unless `force`.
    """
    started = time.perf_counter()
    spec = spec or SOURCES[slug]
    raw = Path(raw).resolve()
    if not raw.is_dir():
        raise DataPrepError(f"raw directory {raw} not found; expected {spec.layout}")
    if chunk_size is not None and chunk_size < 1:
        raise DataPrepError(f"--chunk-size must be at least 1, got {chunk_size}")
    out_dir = Path(out) / slug
    options: dict[str, object] = {"rate": rate, "folds": sorted(folds) if folds else None} if slug == "ptbxl" else {}
    if refs is not None:
        options = {"records_sha256": records_digest(refs)}
    parts_dir = out_dir / "parts"

    if not force and (out_dir / "meta.json").is_file() and all((out_dir / name).is_file() for name in DUMP_FILES):
        meta = json.loads((out_dir / "meta.json").read_text())
        if meta.get("raw_dir") != str(raw) or meta.get("options") != options:
            raise DataPrepError(
                f"{out_dir} holds a dump of {meta.get('raw_dir')} with options {meta.get('options')}; "
                "pass --force to rebuild it"
            )
        shutil.rmtree(parts_dir, ignore_errors=True)  # left over if a run died after writing meta.json
        log(f"{slug}: {out_dir} is already complete, nothing to do (pass --force to rebuild)")
        return DumpResult(out_dir, meta["num_records"], meta["num_rejected"], 0.0, skipped=True)

    reader = READERS[spec.reader]
    if refs is not None:
        refs = list(refs)
    elif slug == "ptbxl":
        refs = reader.discover(raw, rate=rate, folds=folds)
    elif spec.reader == "folder":
        refs = reader.discover(raw, manifest=manifest)
    else:
        refs = reader.discover(raw)
    _ensure_writable(out_dir)
    if force:
        _remove_dump(out_dir)
    chunk_size = chunk_size or spec.default_chunk_size
    _prepare_parts_dir(parts_dir, _manifest(slug, raw, options, chunk_size, refs), log)

    chunks = [refs[i : i + chunk_size] for i in range(0, len(refs), chunk_size)]
    todo = [i for i in range(len(chunks)) if not _part_path(parts_dir, i).is_file()]
    if len(todo) < len(chunks):
        log(f"{slug}: resuming, {len(chunks) - len(todo)} of {len(chunks)} parts already done")
    pending_records = sum(len(chunks[i]) for i in todo)
    with _progress(len(refs), len(refs) - pending_records, slug, progress) as bar:
        _run_chunks(partial(process_record, spec, raw), chunks, todo, parts_dir, workers or default_workers(), bar)

    kept, rejected = _assemble(spec, raw, out_dir, parts_dir, len(chunks), options)
    seconds = time.perf_counter() - started
    log(f"{slug}: kept {kept} records, rejected {rejected}, {seconds:.1f} s -> {out_dir}")
    return DumpResult(out_dir, kept, rejected, seconds)


def dump_all(root: Path, out: Path, *, log: Log = print, **kwargs: object) -> list[tuple[str, DumpResult | str]]:
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


def _ensure_writable(out_dir: Path) -> None:
    try:
        ensure_writable_dir(out_dir)
    except PermissionError as error:
        raise DataPrepError(str(error)) from error


def _remove_dump(out_dir: Path) -> None:
    for name in (*DUMP_FILES, LABELS_FILE):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "parts", ignore_errors=True)


def _manifest(
    slug: str, raw: Path, options: dict[str, object], chunk_size: int, refs: list[RecordRef]
) -> dict[str, object]:
    """What the part files depend on; parts from a run with another manifest are discarded."""
    return {
        "source": slug,
        "raw_dir": str(raw),
        "options": options,
        "chunk_size": chunk_size,
        "num_records": len(refs),
        "records_sha256": records_digest(refs),
    }


def records_digest(refs: Sequence[RecordRef]) -> str:
    """A digest of a record list: a dump (or its parts) of another list is not reused."""
    digest = hashlib.sha256()
    for ref in refs:
        digest.update(repr(tuple(ref)).encode())
    return digest.hexdigest()


def _prepare_parts_dir(parts_dir: Path, manifest: dict[str, object], log: Log) -> None:
    manifest_path = parts_dir / "manifest.json"
    if parts_dir.is_dir():
        if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
            for stale in parts_dir.glob("*.tmp"):
                stale.unlink()
            return
        log(f"discarding part files of a different run in {parts_dir}")
        shutil.rmtree(parts_dir)
    parts_dir.mkdir()
    _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())


def _part_path(parts_dir: Path, index: int) -> Path:
    return parts_dir / f"part_{index:06d}.npz"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
    arrays = {
        "signals": np.concatenate([signal for _, signal, _, _ in kept])
        if kept
        else np.empty((0, NUM_LEADS), dtype=np.float16),
        "lengths": np.array([len(signal) for _, signal, _, _ in kept], dtype=np.int64),
        "record_ids": np.array([str(ref.record_id) for ref, _, _, _ in kept], dtype=str),
        "folds": np.array([-1 if ref.fold is None else ref.fold for ref, _, _, _ in kept], dtype=np.int64),
        "fs": np.array([fs for _, _, fs, _ in kept], dtype=np.float64),
        "dx": np.array([dx for _, _, _, dx in kept], dtype=str),
        "reject_ids": np.array([str(ref.record_id) for ref, _ in rejected], dtype=str),
        "reject_reasons": np.array([reason for _, reason in rejected], dtype=str),
    }
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _assemble(
    spec: SourceSpec, raw: Path, out_dir: Path, parts_dir: Path, num_parts: int, options: dict[str, object]
) -> tuple[int, int]:
    """Stream the part files into the final dump files; returns (kept, rejected)."""
    parts = [_part_path(parts_dir, i) for i in range(num_parts)]
    stats_folds = PTBXL_STATS_FOLDS if spec.slug == "ptbxl" else None
    kept = rejected = total = 0
    index_tmp, rejects_tmp, signals_tmp = (out_dir / f"{name}.tmp" for name in DUMP_FILES[:3])
    labels_tmp = out_dir / f"{LABELS_FILE}.tmp"
    any_dx = False
    with (
        open(index_tmp, "w", newline="") as index_file,
        open(rejects_tmp, "w", newline="") as rejects_file,
        open(labels_tmp, "w", newline="") as labels_file,
    ):
        index_writer, rejects_writer = csv.writer(index_file), csv.writer(rejects_file)
        labels_writer = csv.writer(labels_file)
        index_writer.writerow(INDEX_COLUMNS)
        rejects_writer.writerow(("record_id", "reason"))
        labels_writer.writerow(("record_id", "dx"))
        for path in parts:
            with np.load(path) as part:
                dx = part["dx"] if "dx" in part.files else np.full(len(part["record_ids"]), "")
                columns = (part["record_ids"], part["lengths"], part["folds"], part["fs"], dx)
                for record_id, length, fold, fs, dx in zip(*columns, strict=True):
                    fold_text = "" if fold < 0 else int(fold)
                    index_writer.writerow((record_id, spec.slug, total, int(length), fold_text, f"{fs:g}"))
                    labels_writer.writerow((record_id, dx))
                    any_dx = any_dx or bool(dx)
                    total += int(length)
                kept += len(columns[0])
                reject_ids = part["reject_ids"]
                rejects_writer.writerows(zip(reject_ids, part["reject_reasons"], strict=True))
                rejected += len(reject_ids)

    # Plain sequential writes behind a standard .npy header: a writable memmap would keep every
    # touched page of the whole dump in this process's resident set.
    stats = LeadStats(NUM_LEADS)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False}
    with open(signals_tmp, "wb") as signals_file:
        np.lib.format.write_array_header_1_0(signals_file, {**header, "shape": (total, NUM_LEADS)})
        for path in parts:
            with np.load(path) as part:
                signals = np.ascontiguousarray(part["signals"], dtype=np.float16)
                signals_file.write(signals.data)
                if stats_folds is None:
                    stats.update(signals)
                else:
                    selected = np.isin(part["folds"], stats_folds)
                    stats.update(signals[np.repeat(selected, part["lengths"])])
    for name, tmp in zip(DUMP_FILES[:3], (signals_tmp, index_tmp, rejects_tmp), strict=True):
        os.replace(tmp, out_dir / name)
    if any_dx:
        os.replace(labels_tmp, out_dir / LABELS_FILE)
    else:
        labels_tmp.unlink()
    for name in spec.metadata_files:
        # The evaluation reads labels and folds from these copies: the dump folder is self-contained.
        if (raw / name).is_file():
            shutil.copyfile(raw / name, out_dir / f"{name}.tmp")
            os.replace(out_dir / f"{name}.tmp", out_dir / name)

    moments = stats.result()
    meta = {
        "source": spec.slug,
        "sampling_frequency": TARGET_FS,
        "leads": list(CANONICAL_LEADS),
        "num_records": kept,
        "total_samples": total,
        "dtype": "float16",
        "mean": None if moments is None else moments[0].tolist(),
        "std": None if moments is None else moments[1].tolist(),
        "std_ddof": 0,
        "stats_folds": None if stats_folds is None else list(stats_folds),
        "num_rejected": rejected,
        "ecgjepa_version": getattr(ecgjepa, "__version__", "unknown"),
        "created_by": "data_prep",
        "raw_dir": str(raw),
        "options": options,
    }
    _write_atomic(out_dir / "meta.json", (json.dumps(meta, indent=2) + "\n").encode())
    shutil.rmtree(parts_dir)
    return kept, rejected


class Progress(Protocol):
    def update(self, n: int) -> object: ...


class _PlainProgress:
    """Fallback progress report (one line per ~10 %) when tqdm is not installed."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool) -> None:
        self.total, self.done, self.desc, self.enabled, self.next_report = total, initial, desc, enabled, 0.0

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        self.done += n
        if self.enabled and self.done >= self.next_report * self.total:
            print(f"{self.desc}: {self.done}/{self.total} records", file=sys.stderr)
            self.next_report = self.done / max(self.total, 1) + 0.1


def _progress(total: int, initial: int, desc: str, enabled: bool) -> AbstractContextManager[Progress]:
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, initial, desc, enabled)
    return tqdm(total=total, initial=initial, desc=desc, unit="rec", disable=not enabled)

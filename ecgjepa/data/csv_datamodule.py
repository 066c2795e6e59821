"""One's own labels: a CSV whose rows name records and carry label columns.

    record,AF,RBBB            record,rhythm             record,age
    g1/E00001,1,0             g1/E00001,AF              g1/E00001,61
    g1/E00002,0,1             g1/E00002,sinus           g1/E00002,47

``record`` is a WFDB record (``g1/E00001`` for ``g1/E00001.hea``) or an array file (``.npy``, ``.h5``; then the
row also needs ``sampling_rate`` and ``leads`` columns, as in the manifest of ``python -m data_prep folder``),
relative to the CSV's folder. Several 0/1 label columns make a multi-label task, one categorical column a
multi-class one, one numeric column with ``kind=regression`` a regression. An optional ``fold`` column of whole
numbers gives the folds (``val_fold`` and ``test_fold`` are held out, every other fold trains); otherwise a
seeded, stratified split into folds 1-10 is made.

The records are read once (leads matched by name, resampled to the dumps' rate) into a dump under
``<data_dir>/labelled/<csv name>-<hash of its path>``, resumable like any ``data_prep`` dump, and rebuilt when
the CSV lists other records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from ecgjepa.core.dump_format import REJECTS_FILE, records_digest
from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.core.dump_writer import dump_records
from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.manifest import ARRAY_COLUMNS, TableError, array_ref, check_array_columns, check_column, line_of
from ecgjepa.core.records import ARRAY_SUFFIXES, WFDB_SUFFIXES, RecordRef, SourceSpec, folder_spec
from ecgjepa.data.kinds import KINDS, is_binary, task_kind
from ecgjepa.data.labelled import DumpRecords, LabelledDataModule, LabelledRecords, listed

log = logging.getLogger(__name__)

KIND_CHOICES = ("auto", *KINDS)
UNUSABLE_CHOICES = ("error", "drop")
NUM_FOLDS = 10


class LabelsError(TableError):
    """The labels CSV cannot be used as it is (the message names the file, line or column)."""


def fold_number(value: object) -> str | None:
    """None for a fold 1..10; else why not."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    return None if number in range(1, NUM_FOLDS + 1) else f"expected a fold from 1 to {NUM_FOLDS}"


class CSVDataModule(LabelledDataModule):
    """Labels of one's own from a CSV (see the module docstring).

    Args:
        path: the labels CSV.
        task: the label set's name (reports group runs by it); null = the CSV's file name without suffix.
        kind: ``auto`` (several 0/1 columns or one 0/1 column: multi-label; one other column: multi-class),
            ``multilabel``, ``multiclass`` or ``regression``.
        labels: the label columns; null = every column but ``record_column``, ``fold`` and the array columns.
        record_column: the column naming the records.
        split_seed: seed of the stratified 10-fold split when the CSV has no ``fold`` column.
        unusable_records: 'error' stops at records that cannot be read (naming their lines and the reason),
            'drop' leaves them out with a warning.
        **common: see :class:`~ecgjepa.data.labelled.LabelledDataModule`.
    """

    def __init__(
        self,
        data_dir: str,
        path: str,
        task: str | None,
        kind: str,
        labels: list[str] | None,
        record_column: str,
        split_seed: int,
        unusable_records: str,
        **common: object,
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        if kind not in KIND_CHOICES:
            raise LabelsError(f"dataset.kind: expected one of {KIND_CHOICES}, got {kind!r}")
        if unusable_records not in UNUSABLE_CHOICES:
            raise LabelsError(f"dataset.unusable_records: expected one of {UNUSABLE_CHOICES}, got {unusable_records!r}")
        self.table, self.label_columns = self._read(labels, record_column)
        kind = self._infer_kind() if kind == "auto" else kind
        super().__init__(data_dir, task or self.path.stem, kind, **common)
        self.record_column, self.split_seed, self.unusable_records = record_column, split_seed, unusable_records

    def _read(self, labels: list[str] | None, record_column: str) -> tuple[pd.DataFrame, list[str]]:
        if not self.path.is_file():
            raise LabelsError(f"dataset.path: {self.path} not found; expected a CSV of records and labels")
        try:
            table = pd.read_csv(self.path, dtype={record_column: str, "leads": str, "dataset": str})
        except (ValueError, UnicodeDecodeError) as err:
            raise LabelsError(f"{self.path}: not a readable CSV: {err}") from None
        if record_column not in table.columns:
            raise LabelsError(
                f"{self.path}: no column {record_column!r} naming the records (dataset.record_column); "
                f"columns: {list(table.columns)}"
            )
        if table.empty:
            raise LabelsError(f"{self.path}: no rows")
        reserved = {record_column, "fold", *ARRAY_COLUMNS}
        if labels is None:
            labels = [c for c in table.columns if c not in reserved]
        unknown = [c for c in labels if c not in table.columns or c in reserved]
        if unknown:
            available = [c for c in table.columns if c not in reserved]
            raise LabelsError(
                f"{self.path}: unknown label column(s) {unknown} (dataset.labels); label columns: {available}"
            )
        if not labels:
            raise LabelsError(f"{self.path}: no label column besides {sorted(reserved & set(table.columns))}")
        for column in (record_column, *labels):
            missing = np.flatnonzero(table[column].isna().to_numpy())
            if missing.size:
                lines = ", ".join(str(line_of(i)) for i in missing[:5])
                raise LabelsError(f"{self.path}: column {column!r} is empty on line(s) {lines}")
        duplicated = table[record_column].duplicated(keep=False).to_numpy()
        if duplicated.any():
            first = table[record_column][duplicated].iloc[0]
            lines = [line_of(i) for i in np.flatnonzero((table[record_column] == first).to_numpy())]
            raise LabelsError(f"{self.path}: record {first!r} is listed more than once (lines {lines})")
        return table, list(labels)

    def _infer_kind(self) -> str:
        binary = [self._is_binary(c) for c in self.label_columns]
        if all(binary):
            return "multilabel"
        if len(self.label_columns) == 1:
            return "multiclass"
        column = self.label_columns[binary.index(False)]
        raise LabelsError(
            f"{self.path}: column {column!r} is not 0/1, but several label columns make a multi-label task; "
            "name one column with dataset.labels=[...] for a multi-class or regression task"
        )

    def _is_binary(self, column: str) -> bool:
        return bool(self.table[column].map(is_binary).all())

    def _targets(self, table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        return task_kind(self.kind).targets(self.path, table, self.label_columns)

    def _refs(self) -> list[RecordRef]:
        """The records of the rows, each checked to exist (a missing one stops here, naming its line)."""
        base, refs, missing = self.path.parent, [], []
        arrays = self.table[self.table[self.record_column].map(lambda name: Path(name).suffix in ARRAY_SUFFIXES)]
        if len(arrays):
            absent = [c for c in ("sampling_rate", "leads") if c not in arrays.columns]
            if absent:
                raise LabelsError(
                    f"{self.path}: the array files it lists need the column(s) {absent}: sampling_rate (Hz) and "
                    "leads (comma-separated lead names)"
                )
            check_array_columns(self.path, arrays)
        for position, row in enumerate(self.table.to_dict("records")):
            name = str(row[self.record_column])
            file = base / name
            if file.suffix in ARRAY_SUFFIXES:
                if not file.is_file():
                    missing.append(f"line {line_of(position)}: {name!r} ({file} not found)")
                else:
                    refs.append(array_ref(name, file, row))
                continue
            stem = file.with_suffix("") if file.suffix in WFDB_SUFFIXES else file
            if not stem.with_name(stem.name + ".hea").is_file():
                missing.append(f"line {line_of(position)}: {name!r} ({stem}.hea not found)")
            else:
                refs.append(RecordRef(name, str(stem)))
        if missing:
            raise LabelsError(
                f"{self.path}: record(s) not found: {listed(missing)}. A record is a WFDB record "
                "(<name>.hea + .dat/.mat) or an .npy/.h5 file, relative to the CSV's folder"
            )
        return refs

    def _dump(self, refs: list[RecordRef]) -> SourceDump:
        root = self.data_dir / "labelled"
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", self.path.stem)
        name = f"{stem}-{hashlib.sha256(str(self.path).encode()).hexdigest()[:8]}"
        meta = root / name / "meta.json"
        digest = records_digest(refs)
        spec = folder_spec(name, self.min_length / self.fs, self.leads)
        options = {"records_sha256": digest, "leads": list(self.leads), "min_samples": self.min_length}
        (root / name).mkdir(parents=True, exist_ok=True)
        # One process dumps; the other ranks of a multi-process run wait and find the finished dump.
        with FileLock(root / name / ".lock"):
            stale = meta.is_file() and json.loads(meta.read_text()).get("options") != options
            self._dump_records(root, spec, refs, options, stale)
        return self.check_dump(SourceDump(root, name))

    def _dump_records(
        self, root: Path, spec: SourceSpec, refs: list[RecordRef], options: dict[str, Any], force: bool
    ) -> None:
        try:
            dump_records(
                spec,
                self.path.parent,
                root,
                refs,
                options=options,
                force=force,
                workers=max(1, self.num_workers),
                progress=sys.stderr.isatty(),
                log=log.info,
            )
        except DataPrepError as err:
            raise LabelsError(f"{self.path}: {err}") from None

    def load_records(self) -> LabelledRecords:
        classes, targets = self._targets(self.table)  # label errors stop the run before any record is read
        refs = self._refs()
        folds = self._folds(self.table, targets)
        dump = self._dump(refs)
        row_of = {rid: i for i, rid in enumerate(dump.record_ids())}
        names = self.table[self.record_column].astype(str).to_numpy()
        usable = np.array([name in row_of for name in names])
        if not usable.all():
            rejects = pd.read_csv(dump.dir / REJECTS_FILE, dtype=str).set_index("record_id")["reason"]
            problems = [
                f"line {line_of(i)}: {names[i]!r}: {rejects.get(names[i], 'not dumped')}"
                for i in np.flatnonzero(~usable)
            ]
            if self.unusable_records == "error":
                raise LabelsError(
                    f"{self.path}: {len(problems)} record(s) cannot be used: {listed(problems)}. Fix or remove them, "
                    "or pass dataset.unusable_records=drop to go on without them"
                )
            log.warning(
                "%s: leaving out %d record(s) that cannot be used: %s", self.path, len(problems), listed(problems)
            )
        targets, folds = targets[usable], folds[usable]
        rows = np.array([row_of[name] for name in names[usable]], dtype=np.int64)
        return LabelledRecords(DumpRecords.of(dump, rows), names[usable], classes, targets, folds)

    def _folds(self, table: pd.DataFrame, targets: np.ndarray) -> np.ndarray:
        if "fold" in table.columns:
            check_column(self.path, table, "fold", fold_number)
            return pd.to_numeric(table["fold"]).to_numpy(dtype=np.int64)
        return task_kind(self.kind).folds(targets, NUM_FOLDS, self.split_seed)

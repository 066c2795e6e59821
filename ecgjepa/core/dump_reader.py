"""Read-only access to dumps (the format: :mod:`ecgjepa.core.dump_format`), with lazy memory maps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgjepa.core.dump_format import (
    INDEX_FILE,
    META_FILE,
    REQUIRED_INDEX_COLUMNS,
    SIGNALS_FILE,
    prepare_command,
    record_fold,
)
from ecgjepa.core.errors import DumpError
from ecgjepa.core.leads import CANONICAL_LEADS


class SourceDump:
    """One source's dump: the index is read eagerly, the signal array is memory-mapped on first use.

    The memory map is opened lazily so that each DataLoader worker opens its own handle.
    """

    def __init__(self, root: str | Path, source: str) -> None:
        self.source = source
        self.dir = Path(root) / source
        self.signals_path = self.dir / SIGNALS_FILE
        if not self.signals_path.is_file():
            raise FileNotFoundError(
                f"no dump for source '{source}': {self.signals_path} does not exist. Create it with: "
                f"{prepare_command(source, root)}; or point paths.data_dir (env ECGJEPA_DATA_DIR) at your dumps"
            )
        self.meta = self._read_meta()
        self.index = self._read_index()
        self.starts = self.index["start"].to_numpy(dtype=np.int64)
        self.lengths = self.index["length"].to_numpy(dtype=np.int64)
        self._signals: np.ndarray | None = None
        self._check_array()

    def _read_meta(self) -> dict[str, Any]:
        path = self.dir / META_FILE
        if not path.is_file():
            raise DumpError(f"{path} is missing; re-run: {prepare_command(self.source, self.dir.parent)}")
        try:
            meta = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise DumpError(f"{path}: not valid JSON: {err}") from None
        if not isinstance(meta, dict):
            raise DumpError(f"{path}: expected a JSON object, got {type(meta).__name__}")
        leads = [str(lead).upper() for lead in meta.get("leads", [])]
        if leads != list(CANONICAL_LEADS):
            raise DumpError(f"{path}: leads {meta.get('leads')} differ from the canonical {list(CANONICAL_LEADS)}")
        return meta

    def _read_index(self) -> pd.DataFrame:
        path = self.dir / INDEX_FILE
        if not path.is_file():
            raise DumpError(f"{path} is missing; re-run: {prepare_command(self.source, self.dir.parent)}")
        try:
            index = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError) as err:
            raise DumpError(f"{path}: not a readable CSV: {err}") from None
        missing = [c for c in REQUIRED_INDEX_COLUMNS if c not in index.columns]
        if missing:
            raise DumpError(f"{path}: missing column(s) {missing}; expected at least {list(REQUIRED_INDEX_COLUMNS)}")
        if index.empty:
            raise DumpError(f"{path}: the dump holds no records")
        return index

    def _check_array(self) -> None:
        try:
            arr = np.load(self.signals_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DumpError(
                f"{self.signals_path}: not a readable .npy array (truncated or corrupted?): {err}; "
                f"rebuild it with: {prepare_command(self.source, self.dir.parent)} --force"
            ) from None
        if arr.dtype != np.float16 or arr.ndim != 2 or arr.shape[1] != len(CANONICAL_LEADS):
            raise DumpError(
                f"{self.signals_path}: expected a float16 array of shape (samples, 12), got {arr.dtype} {arr.shape}"
            )
        end = int((self.index["start"] + self.index["length"]).max())
        if end > arr.shape[0] or (self.index["start"] < 0).any() or (self.index["length"] <= 0).any():
            raise DumpError(
                f"{self.dir / INDEX_FILE} does not match {self.signals_path}: records end at sample {end} "
                f"but the array has {arr.shape[0]} rows"
            )

    @property
    def signals(self) -> np.ndarray:
        if self._signals is None:
            self._signals = np.load(self.signals_path, mmap_mode="r")
        return self._signals

    def __getstate__(self) -> dict[str, Any]:
        # Never pickle an open memory map into worker processes.
        return {**self.__dict__, "_signals": None}

    def __len__(self) -> int:
        return len(self.index)

    def record_ids(self) -> np.ndarray:
        """Each record's id as written in ``index.csv`` (text: ``001`` stays ``001``)."""
        return pd.read_csv(self.dir / INDEX_FILE, usecols=["record_id"], dtype=str)["record_id"].to_numpy()

    def patients(self) -> np.ndarray:
        """Each record's patient id as written in ``index.csv``, empty where the source gives none (every record
        of a dump without the ``patient`` column)."""
        if "patient" not in self.index.columns:
            return np.full(len(self.index), "", dtype=object)
        column = pd.read_csv(self.dir / INDEX_FILE, usecols=["patient"], dtype=str, keep_default_na=False)
        return column["patient"].to_numpy(dtype=object)

    def record_folds(self) -> np.ndarray:
        """Each record's fold: the dump's own (PTB-XL ``strat_fold``) where it has them, else the fold its id
        gets from :func:`~ecgjepa.core.dump_format.record_fold` (the Challenge 2021 benchmark's folds)."""
        if "fold" in self.index.columns and self.index["fold"].notna().all():
            return self.index["fold"].to_numpy(dtype=np.int64)
        return np.array([record_fold(rid) for rid in self.record_ids()], dtype=np.int64)

    def select(
        self, folds: list[int] | None = None, min_length: int = 0, exclude_folds: list[int] | None = None
    ) -> np.ndarray:
        """Row numbers of records in ``folds`` (if given) and not in ``exclude_folds`` (see :meth:`record_folds`)
        with at least ``min_length`` samples."""
        keep = self.index["length"].to_numpy() >= min_length
        if folds is not None:
            if "fold" not in self.index.columns or self.index["fold"].isna().all():
                raise DumpError(f"{self.dir / INDEX_FILE} has no fold column but folds={folds} were asked for")
            keep &= self.index["fold"].isin(list(folds)).to_numpy()
        if exclude_folds:
            keep &= ~np.isin(self.record_folds(), list(exclude_folds))
        rows = np.flatnonzero(keep)
        if rows.size == 0:
            raise DumpError(
                f"source '{self.source}': no record left after selecting folds={folds}, leaving out "
                f"folds {exclude_folds} and length >= {min_length} samples"
            )
        return rows

    def read(self, row: int, offset: int, length: int) -> np.ndarray:
        """(length, 12) float16 samples of record ``row`` starting at ``offset``."""
        start = int(self.starts[row]) + offset
        return self.signals[start : start + length]

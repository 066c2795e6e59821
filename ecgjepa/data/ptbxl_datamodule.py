"""PTB-XL evaluation data (spec §6.2-6.3): benchmark labels, folds, train-fold normalisation, crops.

Training draws one random crop of ``crop_duration`` seconds per record; validation and test return
whole 10 s records, which :class:`~ecgjepa.modules.classifier.ClassifierModule` cuts into strided
crops inside one forward pass.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ecgjepa.data.dumps import DumpError, SourceDump
from ecgjepa.data.ptbxl import (
    check_classes_present,
    is_multiclass,
    load_labels,
    split_by_folds,
    undefined_auroc_classes,
)
from ecgjepa.data.sample import require_data_dir
from ecgjepa.data.signal import CANONICAL_LEADS

log = logging.getLogger(__name__)


class RecordDataset(Dataset):
    """Normalised records of one split: ``(signal (12, T) float32, target (C,), record position)``.

    With ``crop`` set, each item is a random crop of that many samples (training).
    """

    def __init__(
        self,
        dump: SourceDump,
        rows: np.ndarray,
        targets: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        length: int,
        crop: int | None = None,
    ) -> None:
        self.dump, self.rows, self.targets = dump, rows, targets
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.length, self.crop = length, crop

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        offset, size = 0, self.length
        if self.crop is not None:
            offset, size = int(np.random.randint(self.length - self.crop + 1)), self.crop
        x = self.dump.read(int(self.rows[i]), offset, size)
        if not np.isfinite(x).all():
            raise non_finite_error(self.dump, int(self.rows[i]))
        x = normalise_record(x, self.mean, self.std)
        return torch.from_numpy(x), torch.from_numpy(self.targets[i]), i


def normalise_record(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(samples, 12) dumped float16 values -> (12, samples) float32 model input: z-scored per lead with the
    training folds' statistics in float32, clipped to +-5 and rounded to float16."""
    x = np.clip((x.astype(np.float32) - mean) / std, -5.0, 5.0).astype(np.float16).astype(np.float32)
    return np.ascontiguousarray(x.T)


def non_finite_error(dump: SourceDump, row: int) -> DumpError:
    return DumpError(
        f"non-finite values in {dump.signals_path} record {dump.index['record_id'].iat[row]!r} (row {row}); "
        "the dump must be NaN-free: rebuild it with data_prep"
    )


def train_statistics(dump: SourceDump, rows: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and population std over every sample of the training records (float64 sums)."""
    total = np.zeros(12)
    total_sq = np.zeros(12)
    for row in rows:
        x = dump.read(int(row), 0, length).astype(np.float64)
        if not np.isfinite(x).all():
            raise non_finite_error(dump, int(row))
        total += x.sum(axis=0)
        total_sq += np.square(x).sum(axis=0)
    n = len(rows) * length
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    if (std <= 0).any():
        raise DumpError(f"{dump.signals_path}: a lead has zero variance over the training folds")
    return mean, std


class PTBXLDataModule(L.LightningDataModule):
    """PTB-XL for one benchmark task.

    Args:
        data_dir: data root holding the ``ptbxl`` dump (500 Hz, all folds).
        metadata_dir: folder with ``ptbxl_database.csv`` and ``scp_statements.csv``.
        task: ``all``, ``diagnostic``, ``subdiagnostic``, ``superdiagnostic``, ``form``, ``rhythm``, ``st_mem``.
        val_fold, test_fold: folds held out (all others train).
        crop_duration, crop_stride: seconds; ``crop_duration`` null = whole records.
        sampling_frequency, record_duration: expected dump rate (Hz) and record length (s).
        batch_size, num_workers: loaders.
        absent_classes: 'error' refuses a class without a positive (or negative) record in the training,
            validation or test split (its AUROC is undefined); 'drop' leaves such classes out of the task
            with a warning naming them (for small datasets such as the bundled sample).
        bundled_sample: ``data_dir`` holds the bundled PTB-XL sample's dump, made on first use.
    """

    def __init__(
        self,
        data_dir: str,
        metadata_dir: str,
        task: str = "all",
        val_fold: int = 9,
        test_fold: int = 10,
        crop_duration: float | None = 2.5,
        crop_stride: float | None = 1.25,
        sampling_frequency: int = 500,
        record_duration: float = 10.0,
        batch_size: int = 128,
        num_workers: int = 2,
        pin_memory: bool = False,
        dump: str = "ptbxl",
        absent_classes: str = "error",
        bundled_sample: bool = False,
    ) -> None:
        super().__init__()
        self.data_dir, self.metadata_dir, self.dump_name = Path(data_dir), Path(metadata_dir), dump
        if absent_classes not in ("error", "drop"):
            raise ValueError(f"dataset.absent_classes: expected 'error' or 'drop', got {absent_classes!r}")
        self.absent_classes = absent_classes
        self.bundled_sample = bundled_sample
        self.task = task
        self.multiclass = is_multiclass(task)
        self.val_fold, self.test_fold = val_fold, test_fold
        self.fs = sampling_frequency
        self.length = round(record_duration * sampling_frequency)
        self.crop = None if crop_duration is None else round(crop_duration * sampling_frequency)
        self.stride = None if crop_stride is None else round(crop_stride * sampling_frequency)
        if self.crop is not None and self.crop > self.length:
            raise ValueError(
                f"crop_duration={crop_duration} s ({self.crop} samples) is longer than the records "
                f"({record_duration} s = {self.length} samples)"
            )
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.classes: list[str] = []
        self.datasets: dict[str, RecordDataset] = {}

    @property
    def input_shape(self) -> dict[str, Any]:
        """The leads (the dumps' canonical order) and the samples of one record: a new encoder is built for them."""
        return {"channels": list(CANONICAL_LEADS), "channel_size": self.length}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        require_data_dir(self.data_dir, "ptbxl", self.bundled_sample)
        ecg_ids, classes, targets, folds = load_labels(self.metadata_dir, self.task)
        dump = SourceDump(self.data_dir, self.dump_name)
        if dump.meta.get("sampling_frequency") != self.fs:
            raise DumpError(
                f"{dump.dir}: sampling_frequency {dump.meta.get('sampling_frequency')} Hz, expected {self.fs}"
            )
        row_of = {int(r): i for i, r in enumerate(dump.index["record_id"].to_numpy())}
        present = np.array([int(e) in row_of for e in ecg_ids])
        if not present.any():
            raise DumpError(f"none of the labelled PTB-XL records of {self.metadata_dir} is in {dump.dir}")
        if not present.all():
            log.info(
                "PTB-XL: %d of %d labelled records are not in the dump; using %d",
                (~present).sum(),
                len(present),
                present.sum(),
            )
        ecg_ids, targets, folds = ecg_ids[present], targets[present], folds[present]
        rows = np.array([row_of[int(e)] for e in ecg_ids])
        short = dump.lengths[rows] < self.length
        if short.any():
            raise DumpError(f"{dump.dir}: {short.sum()} PTB-XL record(s) shorter than {self.length} samples")
        splits = split_by_folds(folds, self.val_fold, self.test_fold)
        if self.absent_classes == "drop":
            ecg_ids, classes, targets, folds, rows = self._drop_absent_classes(ecg_ids, classes, targets, folds, rows)
            splits = split_by_folds(folds, self.val_fold, self.test_fold)
        for split, fold in (("validation", self.val_fold), ("test", self.test_fold)):
            check_classes_present(
                targets[splits["val" if split == "validation" else "test"]], f"{split} fold {fold}", classes
            )
        self.classes = classes
        self.ecg_ids = {name: ecg_ids[idx] for name, idx in splits.items()}
        self.mean, self.std = train_statistics(dump, rows[splits["train"]], self.length)
        for name, idx in splits.items():
            crop = self.crop if name == "train" else None
            self.datasets[name] = RecordDataset(dump, rows[idx], targets[idx], self.mean, self.std, self.length, crop)

    def _drop_absent_classes(
        self, ecg_ids: np.ndarray, classes: list[str], targets: np.ndarray, folds: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Leave out the classes whose AUROC is undefined in a split (and, for a single-label task, the records
        left without a class)."""
        absent = undefined_auroc_classes(targets, split_by_folds(folds, self.val_fold, self.test_fold))
        if absent.all():
            raise ValueError(f"task {self.task}: no class has positive and negative records in every split")
        if absent.any():
            log.warning(
                "task %s: leaving out %d class(es) without a positive or negative record in a split: %s",
                self.task,
                absent.sum(),
                ", ".join(c for c, a in zip(classes, absent, strict=True) if a),
            )
        classes = [c for c, a in zip(classes, absent, strict=True) if not a]
        targets = targets[:, ~absent]
        keep = targets.sum(axis=1) > 0 if self.multiclass else np.ones(len(targets), dtype=bool)
        return ecg_ids[keep], classes, targets[keep], folds[keep], rows[keep]

    def _loader(self, name: str, train: bool) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(self.datasets[name]) >= self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader("val", False), self._loader("test", False)]

"""What every labelled evaluation dataset shares (ECG-JEPA finetune.py): records in dumps, folds, a seeded
stratified training subset, train-fold normalisation, random training crops and whole-record evaluation.

A dataset (PTB-XL, a CSV of one's own labels, the Challenge 2021 sources) only says which dumped records
carry which labels, in :meth:`LabelledDataModule.load_records`. A record of any length from one crop up is used,
up to ``record_duration`` seconds of it (the first ones). Training draws one random crop of ``crop_duration``
seconds per record; validation and test return the whole record (a batch padded to its longest, with each
record's length), which :class:`~ecgjepa.modules.classifier.ClassifierModule` cuts into the crops that fit.
With ``leads`` a subset, the other leads are zero after normalisation (the mean).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.core.errors import DumpError
from ecgjepa.core.leads import CANONICAL_LEADS, lead_mask, lead_subset
from ecgjepa.core.signal import resample
from ecgjepa.data.kinds import KINDS, TaskKind, task_kind
from ecgjepa.data.splits import check_classes_present, split_by_folds, undefined_auroc_classes
from ecgjepa.data.transforms import Conditioning, normalise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DumpRecords:
    """Records spread over one or more dumps: record ``i`` is row ``rows[i]`` of ``dumps[dump_of[i]]``."""

    dumps: tuple[SourceDump, ...]
    dump_of: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, dump: SourceDump, rows: np.ndarray) -> DumpRecords:
        rows = np.asarray(rows, dtype=np.int64)
        return cls((dump,), np.zeros(len(rows), dtype=np.int64), rows)

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, positions: np.ndarray) -> DumpRecords:
        return replace(self, dump_of=self.dump_of[positions], rows=self.rows[positions])

    def lengths(self) -> np.ndarray:
        lengths = np.zeros(len(self.rows), dtype=np.int64)
        for d, dump in enumerate(self.dumps):
            mine = self.dump_of == d
            lengths[mine] = dump.lengths[self.rows[mine]]
        return lengths

    def read(self, i: int, offset: int, size: int) -> np.ndarray:
        """(size, 12) float16 samples of record ``i``; raises :class:`DumpError` on non-finite values."""
        dump, row = self.dumps[self.dump_of[i]], self.rows[i]
        x = dump.read(row, offset, size)
        if not np.isfinite(x).all():
            raise DumpError(
                f"non-finite values in {dump.signals_path} record {dump.index['record_id'].iat[row]!r} (row {row}); "
                "the dump must be NaN-free: rebuild it with data_prep"
            )
        return x


@dataclass(frozen=True)
class LabelledRecords:
    """A dataset's records and labels: ``targets`` (records, classes) float32, multi-hot, one-hot or (records, 1)
    values; ``folds`` 1-10; ``ids`` name the records in outputs."""

    records: DumpRecords
    ids: np.ndarray
    classes: list[str]
    targets: np.ndarray
    folds: np.ndarray

    def subset(self, positions: np.ndarray) -> LabelledRecords:
        return replace(
            self,
            records=self.records.subset(positions),
            ids=self.ids[positions],
            targets=self.targets[positions],
            folds=self.folds[positions],
        )


def listed(names: Sequence[object], limit: int = 5) -> str:
    """``a, b, c`` for a log line or message; more than ``limit`` names end in ``, ... (N in all)``."""
    shown = ", ".join(str(name) for name in list(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def normalise_record(x: np.ndarray, mean: np.ndarray, std: np.ndarray, leads: np.ndarray | None = None) -> np.ndarray:
    """(samples, 12) dumped float16 values -> (12, samples) float32 model input: z-scored per lead with the
    training folds' statistics in float32, clipped to +-5 and rounded to float16; the leads where the (12,) mask
    ``leads`` is 0 are then zero."""
    x = normalise(x.astype(np.float32), mean.astype(np.float32), std.astype(np.float32))
    if leads is not None and not leads.all():
        x = x * leads
    return np.ascontiguousarray(x.astype(np.float16).astype(np.float32).T)


def model_input(
    x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    fs: float,
    input_rate: float,
    conditioning: Conditioning | None = None,
    leads: np.ndarray | None = None,
) -> np.ndarray:
    """(samples, 12) dumped values at ``fs`` -> (12, samples) float32 at the model's ``input_rate``: normalised
    (:func:`normalise_record`, the leads outside the mask ``leads`` zeroed), FFT-resampled where the rates differ,
    then conditioned as the model asks (``conditioning``: band-pass, standardisation); training, evaluation and
    ``ecgjepa-predict`` alike."""
    x = normalise_record(x, mean, std, leads)
    if input_rate != fs:
        x = np.ascontiguousarray(resample(x.T, fs, input_rate).T, dtype=np.float32)
    return conditioning(x, input_rate) if conditioning is not None and conditioning.active else x


def train_statistics(
    records: DumpRecords, max_length: int, leads: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and population std over every sample used of the training records (their first
    ``max_length``; float64 sums). A lead outside the mask ``leads`` gets mean 0 and std 1: it is zeroed anyway."""
    total = np.zeros(len(CANONICAL_LEADS))
    total_sq = np.zeros(len(CANONICAL_LEADS))
    lengths = np.minimum(records.lengths(), max_length)
    for i, length in enumerate(lengths):
        x = records.read(i, 0, int(length)).astype(np.float64)
        total += x.sum(axis=0)
        total_sq += np.square(x).sum(axis=0)
    n = max(int(lengths.sum()), 1)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    used = np.ones(len(CANONICAL_LEADS), dtype=bool) if leads is None else leads.astype(bool)
    mean[~used], std[~used] = 0.0, 1.0
    if (std[used] <= 0).any():
        flat = [lead for lead, s in zip(CANONICAL_LEADS, std, strict=True) if s <= 0]
        raise DumpError(
            f"{records.dumps[0].signals_path}: lead(s) {flat} have zero variance over the training folds; "
            "leave them out with leads=[...] if the records do not hold them"
        )
    return mean, std


def pad_records(signals: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(leads, samples) records of different lengths -> ``(batch (B, leads, longest) zero-padded, lengths (B,))``."""
    lengths = torch.tensor([x.shape[-1] for x in signals], dtype=torch.int64)
    batch = torch.zeros(len(signals), signals[0].shape[0], int(lengths.max()))
    for row, x in enumerate(signals):
        batch[row, :, : x.shape[-1]] = x
    return batch, lengths


def by_length(signals: Sequence[np.ndarray], run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``run`` on the stacked (B, leads, samples) records of each length, one call per length, its rows put back in
    the order of ``signals`` (for models that take one length per call: an ONNX graph, token outputs)."""
    rows: list[np.ndarray | None] = [None] * len(signals)
    for length in sorted({x.shape[-1] for x in signals}):
        positions = [i for i, x in enumerate(signals) if x.shape[-1] == length]
        for i, row in zip(positions, run(np.stack([signals[i] for i in positions])), strict=True):
            rows[i] = row
    return np.stack(rows)


def pad_batch(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[torch.Tensor, ...]:
    """Collate records of different lengths: ``(signals (B, 12, longest) zero-padded, targets, positions,
    lengths)``."""
    signals, lengths = pad_records([x for x, _, _ in items])
    targets = torch.stack([target for _, target, _ in items])
    return signals, targets, torch.tensor([i for _, _, i in items], dtype=torch.int64), lengths


class RecordDataset(Dataset):
    """Normalised records of one split at the model's rate: ``(signal (12, T) float32, target (C,), position)``,
    ``T`` the record's samples up to ``length`` (at the dumps' rate) resampled to ``input_rate``.

    With ``crop`` set (samples at ``input_rate``), each item is a random crop of that many samples (training).
    """

    def __init__(
        self,
        records: DumpRecords,
        targets: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        length: int,
        crop: int | None = None,
        fs: int = 500,
        input_rate: int = 500,
        conditioning: Conditioning | None = None,
        leads: np.ndarray | None = None,
    ) -> None:
        self.records, self.targets = records, targets
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.lengths = np.minimum(records.lengths(), length)
        self.crop, self.fs, self.input_rate = crop, fs, input_rate
        self.conditioning = conditioning or Conditioning()
        self.leads = leads

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        length = int(self.lengths[i])
        if self.input_rate == self.fs and not self.conditioning.active:  # only the crop is read from the dump
            offset, size = 0, length
            if self.crop is not None:
                offset, size = int(np.random.randint(length - self.crop + 1)), self.crop
            x = normalise_record(self.records.read(i, offset, size), self.mean, self.std, self.leads)
        else:
            record = self.records.read(i, 0, length)
            x = model_input(record, self.mean, self.std, self.fs, self.input_rate, self.conditioning, self.leads)
            if self.crop is not None:
                offset = int(np.random.randint(x.shape[-1] - self.crop + 1))
                x = np.ascontiguousarray(x[:, offset : offset + self.crop])
        return torch.from_numpy(x), torch.from_numpy(self.targets[i]), i


class LabelledDataModule(L.LightningDataModule):
    """Splits, normalisation and loaders of a labelled dataset; subclasses implement :meth:`load_records`.

    Args:
        data_dir: data root holding the dumps.
        task: the label set's name (reports group runs by it).
        kind: ``multilabel`` (sigmoid per class), ``multiclass`` (softmax) or ``regression`` (one value).
        val_fold, test_fold: folds held out (all others train).
        crop_duration: seconds of the random training crop; null = whole records. ``crop_stride`` (the
            evaluation crops' stride, applied by the module) is accepted so the protocol's crop settings
            travel together.
        sampling_frequency, record_duration: the dumps' rate (Hz) and the most seconds of a record used (its first
            ones). A shorter record is used whole down to one crop (``crop_duration``; whole-record protocols,
            without crops, leave out records shorter than ``record_duration``).
        leads: the leads used (null = all twelve); the others are zero after normalisation.
        input_rate: the rate (Hz) the model takes: records are resampled to it before cropping; null = the dumps'.
        batch_size, num_workers, pin_memory: loaders.
        absent_classes: 'error' refuses a class without a positive (or negative) record in the validation or
            test split (its AUROC is undefined); 'drop' leaves out the classes without a positive (or negative)
            record in any split, with a warning naming them (for small datasets).
        train_fraction: train on this seeded, stratified fraction of the training folds (label efficiency).
        subset_seed: the seed of that subset.
        regression_loss: ``mse`` or ``l1`` (regression only).
    """

    def __init__(
        self,
        data_dir: str,
        task: str,
        kind: str,
        val_fold: int,
        test_fold: int,
        crop_duration: float | None,
        crop_stride: float | None,
        sampling_frequency: int,
        record_duration: float,
        batch_size: int,
        num_workers: int,
        pin_memory: bool = False,
        absent_classes: str = "error",
        train_fraction: float = 1.0,
        subset_seed: int = 0,
        regression_loss: str = "mse",
        input_rate: int | None = None,
        band_pass: list[float] | None = None,
        standardise: str = "dataset",
        leads: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.leads = lead_subset(leads)
        self.lead_mask = lead_mask(self.leads)
        if kind not in KINDS:
            raise ValueError(f"dataset.kind: expected one of {tuple(KINDS)}, got {kind!r}")
        if absent_classes not in ("error", "drop"):
            raise ValueError(f"dataset.absent_classes: expected 'error' or 'drop', got {absent_classes!r}")
        if not 0 < train_fraction <= 1:
            raise ValueError(f"dataset.train_fraction: expected a number in (0, 1], got {train_fraction}")
        self.task, self.kind, self.absent_classes = task, kind, absent_classes
        self.train_fraction, self.subset_seed = float(train_fraction), subset_seed
        self.regression_loss = regression_loss
        self.val_fold, self.test_fold = val_fold, test_fold
        self.fs, self.record_duration, self.crop_duration = sampling_frequency, record_duration, crop_duration
        self.length = round(record_duration * sampling_frequency)
        self.set_model_input(input_rate, band_pass, standardise)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.classes: list[str] = []
        self.ids: dict[str, np.ndarray] = {}
        self.datasets: dict[str, RecordDataset] = {}

    def set_model_input(
        self, input_rate: int | None, band_pass: list[float] | None = None, standardise: str = "dataset"
    ) -> None:
        """The model's input conventions (before :meth:`setup`): its rate (null = the dumps') and conditioning."""
        self.input_rate = self.fs if input_rate is None else int(input_rate)
        if not 0 < self.input_rate <= self.fs:
            raise ValueError(
                f"model.sampling_frequency={self.input_rate} Hz: the dumps hold {self.fs} Hz "
                "(dataset.sampling_frequency); a model can take that rate or a lower one"
            )
        self.conditioning = Conditioning(tuple(band_pass) if band_pass else None, standardise)
        self.input_length = round(self.record_duration * self.input_rate)
        self.crop = None if self.crop_duration is None else round(self.crop_duration * self.input_rate)
        if self.crop is not None and self.crop > self.input_length:
            raise ValueError(
                f"crop_duration={self.crop_duration} s ({self.crop} samples) is longer than the records "
                f"({self.record_duration} s = {self.input_length} samples): the model's crop_duration (or "
                f"protocol.crop_duration) must fit in dataset.record_duration at {self.input_rate} Hz"
            )

    @property
    def task_kind(self) -> TaskKind:
        """The task's kind (for regression: with the training targets' scale once :meth:`setup` has run)."""
        return task_kind(self.kind, **self.target_scale())

    @property
    def input_shape(self) -> dict[str, Any]:
        """The leads (the dumps' canonical order), the samples of one record and their rate: a new encoder is built
        for them."""
        return {
            "channels": list(CANONICAL_LEADS),
            "channel_size": self.input_length,
            "sampling_frequency": self.input_rate,
        }

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def load_records(self) -> LabelledRecords:
        """The dataset's labelled records (every fold)."""
        raise NotImplementedError

    def check_dump(self, dump: SourceDump) -> SourceDump:
        if dump.meta.get("sampling_frequency") != self.fs:
            raise DumpError(
                f"{dump.dir}: sampling_frequency {dump.meta.get('sampling_frequency')} Hz, expected {self.fs}"
            )
        return dump

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        labelled = self.load_records()
        labelled = self._without_short_records(labelled)
        splits = split_by_folds(labelled.folds, self.val_fold, self.test_fold)
        if task_kind(self.kind).classification:
            if self.absent_classes == "drop":
                labelled = self._drop_absent_classes(labelled, splits)
                splits = split_by_folds(labelled.folds, self.val_fold, self.test_fold)
            for split, fold in (("val", self.val_fold), ("test", self.test_fold)):
                name = f"{'validation' if split == 'val' else 'test'} fold {fold}"
                check_classes_present(labelled.targets[splits[split]], name, labelled.classes)
        if self.train_fraction < 1:
            train = splits["train"]
            subset = task_kind(self.kind).subset(labelled.targets[train], self.train_fraction, self.subset_seed)
            splits["train"] = train[subset]
            log.info(
                "%s: training on %d of %d training records (train_fraction=%g, seed %d)",
                self.task,
                len(splits["train"]),
                len(train),
                self.train_fraction,
                self.subset_seed,
            )
        self.classes = labelled.classes
        self.ids = {name: labelled.ids[idx] for name, idx in splits.items()}
        self.mean, self.std = train_statistics(labelled.records.subset(splits["train"]), self.length, self.lead_mask)
        for name, idx in splits.items():
            crop = self.crop if name == "train" else None
            part = labelled.subset(idx)
            self.datasets[name] = RecordDataset(
                part.records,
                part.targets,
                self.mean,
                self.std,
                self.length,
                crop,
                self.fs,
                self.input_rate,
                self.conditioning,
                self.lead_mask,
            )

    @property
    def min_length(self) -> int:
        """The fewest samples (at the dumps' rate) of a usable record: one crop, or the whole ``record_duration``
        without crops."""
        if self.crop is None:
            return self.length
        return min(self.length, math.ceil(self.crop * self.fs / self.input_rate))

    def _without_short_records(self, labelled: LabelledRecords) -> LabelledRecords:
        short = labelled.records.lengths() < self.min_length
        if short.all():
            raise DumpError(f"{self.task}: every record is shorter than {self.min_length} samples")
        if short.any():
            log.warning(
                "%s: leaving out %d record(s) shorter than %d samples: %s",
                self.task,
                short.sum(),
                self.min_length,
                listed(labelled.ids[short]),
            )
        return labelled.subset(np.flatnonzero(~short))

    def _drop_absent_classes(self, labelled: LabelledRecords, splits: dict[str, np.ndarray]) -> LabelledRecords:
        """Leave out the classes whose AUROC is undefined in a split (and, for a single-label task, the records
        left without a class)."""
        absent = undefined_auroc_classes(labelled.targets, splits)
        if not absent.any():
            return labelled
        if absent.all():
            raise ValueError(f"task {self.task}: no class has positive and negative records in every split")
        absent_names = np.asarray(labelled.classes)[absent]
        log.warning(
            "task %s: leaving out %d class(es) without a positive or negative record in a split: %s",
            self.task,
            absent.sum(),
            listed(absent_names, limit=len(absent_names)),
        )
        kept = replace(
            labelled,
            classes=[c for c, a in zip(labelled.classes, absent, strict=True) if not a],
            targets=labelled.targets[:, ~absent],
        )
        if not task_kind(self.kind).single_label:
            return kept
        # A single-label task also loses the records of the dropped classes, which can leave another class
        # without negatives in a split: repeat until every class is scorable.
        kept = kept.subset(np.flatnonzero(kept.targets.sum(axis=1) > 0))
        return self._drop_absent_classes(kept, split_by_folds(kept.folds, self.val_fold, self.test_fold))

    def target_scale(self) -> dict[str, Any]:
        """Regression: the training targets' mean and std (the head learns the standardised target) and the loss."""
        if task_kind(self.kind).classification or "train" not in self.datasets:
            return {}
        targets = self.datasets["train"].targets[:, 0].astype(np.float64)
        return {
            "target_mean": float(targets.mean()),
            "target_std": float(targets.std()) or 1.0,
            "regression_loss": self.regression_loss,
        }

    def test_metrics(self, targets: np.ndarray, outputs: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
        """Dataset-specific test metrics beside the generic ones (the Challenge metric, for instance)."""
        return {}

    def _loader(self, name: str, train: bool) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(self.datasets[name]) >= self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=pad_batch,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader("val", False), self._loader("test", False)]

"""Task kinds: multi-label, multi-class and regression, each one object that says its loss and output activation,
its metrics and model-selection score, how its records are stratified, and how ``ecgjepa-predict`` names a
prediction. Everything else (datasets, the classifier, the evaluation and prediction commands) asks the kind
instead of branching on its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit
from torchmetrics.functional.classification import multilabel_auroc
from torchmetrics.functional.regression import r2_score

from ecgjepa.core.manifest import TableError, check_column
from ecgjepa.data.splits import stratified_folds, stratified_subset
from ecgjepa.metrics import f1_thresholds, macro_auroc, multiclass_metrics, regression_metrics

REGRESSION_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


class TaskKind(ABC):
    """What depends on the kind of a labelled task. Targets are (records, classes) float arrays: multi-hot,
    one-hot, or one column of values."""

    name: ClassVar[str]
    metric: ClassVar[str] = "auroc"  # what model selection maximises
    classification: ClassVar[bool] = True
    single_label: ClassVar[bool] = False  # each record has exactly one class

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def targets(self, path: Path, table: pd.DataFrame, columns: list[str]) -> tuple[list[str], np.ndarray]:
        """The classes and targets of the label ``columns`` of the labels CSV ``path`` (a value outside the kind's
        domain stops with a message naming the file, line and column)."""

    @abstractmethod
    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities, or regression values in the target's units."""

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The model-selection score of a split's outputs (macro AUROC)."""
        return multilabel_auroc(outputs, targets.long(), num_labels=targets.shape[1], average="macro")

    def metrics(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """The metrics of a split written to metrics.json."""
        return {"auroc": macro_auroc(targets, outputs)}

    def thresholds(self, targets: np.ndarray, outputs: np.ndarray) -> np.ndarray | None:
        """Per-class decision thresholds chosen on the validation split (the best F1), or None."""
        return f1_thresholds(targets, outputs)

    @abstractmethod
    def labels(self, probabilities: pd.DataFrame, thresholds: Sequence[float] | None) -> pd.Series | None:
        """The named prediction of each record (one row per record, one column per class), or None."""

    @abstractmethod
    def folds(self, targets: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
        """A seeded, stratified fold 1..num_folds for each record."""

    @abstractmethod
    def subset(self, targets: np.ndarray, fraction: float, seed: int) -> np.ndarray:
        """Sorted positions of a seeded, stratified subset holding about ``fraction`` of the records."""


class MultiLabel(TaskKind):
    """Sigmoid per class and binary cross-entropy; stratified by the iterative method of Sechidis et al. (2011)."""

    name = "multilabel"

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets)

    def targets(self, path: Path, table: pd.DataFrame, columns: list[str]) -> tuple[list[str], np.ndarray]:
        for column in columns:
            check_column(path, table, column, lambda v: None if is_binary(v) else "a multi-label column holds 0 or 1")
        return list(columns), table[columns].to_numpy(dtype=np.float32)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid()

    def labels(self, probabilities: pd.DataFrame, thresholds: Sequence[float] | None) -> pd.Series:
        above = probabilities.to_numpy() >= np.asarray(thresholds)
        names = np.asarray(probabilities.columns)
        return pd.Series([";".join(names[row]) for row in above], index=probabilities.index)

    def folds(self, targets: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
        if len(targets) < num_folds:  # too few records to stratify: dealt out in a seeded order
            return stratified_folds(np.zeros(len(targets)), num_folds, seed)
        folds = np.zeros(len(targets), dtype=np.int64)
        splitter = MultilabelStratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
        for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(targets)), _indicators(targets)), start=1):
            folds[held_out] = fold
        return folds

    def subset(self, targets: np.ndarray, fraction: float, seed: int) -> np.ndarray:
        _check_fraction(fraction)
        if fraction == 1:
            return np.arange(len(targets))
        chosen_size = max(1, round(fraction * len(targets)))
        if chosen_size >= len(targets):
            return np.arange(len(targets))
        splitter = MultilabelStratifiedShuffleSplit(
            n_splits=1, train_size=chosen_size, test_size=len(targets) - chosen_size, random_state=seed
        )
        chosen, _ = next(splitter.split(np.zeros(len(targets)), _indicators(targets)))
        return np.sort(chosen)


class MultiClass(TaskKind):
    """Softmax and cross-entropy over one-hot targets (e.g. the ST-MEM task); stratified by class."""

    name = "multiclass"
    single_label = True

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets.argmax(dim=1))

    def targets(self, path: Path, table: pd.DataFrame, columns: list[str]) -> tuple[list[str], np.ndarray]:
        names = table[_one_column(self, path, columns)].astype(str)
        classes = sorted(names.unique())
        return classes, (names.to_numpy()[:, None] == np.asarray(classes)[None, :]).astype(np.float32)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def metrics(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        return {**super().metrics(targets, outputs), **multiclass_metrics(targets, outputs)}

    def labels(self, probabilities: pd.DataFrame, thresholds: Sequence[float] | None) -> pd.Series:
        return probabilities.idxmax(axis=1)

    def folds(self, targets: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
        return stratified_folds(np.asarray(targets).argmax(axis=1), num_folds, seed)

    def subset(self, targets: np.ndarray, fraction: float, seed: int) -> np.ndarray:
        return stratified_subset(np.asarray(targets).argmax(axis=1), fraction, seed)


class Regression(TaskKind):
    """One value per record. The head learns the target standardised with the training folds' ``mean`` and
    ``std``; outputs are in the target's units; selection by R²; stratified by the target's quintile."""

    name = "regression"
    metric = "r2"
    classification = False

    def __init__(self, mean: float = 0.0, std: float = 1.0, loss: str = "mse") -> None:
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"dataset.regression_loss: expected one of {sorted(REGRESSION_LOSSES)}, got {loss!r}")
        self.mean, self.std, self.loss_name = float(mean), float(std), loss

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return REGRESSION_LOSSES[self.loss_name](logits, (targets - self.mean) / self.std)

    def targets(self, path: Path, table: pd.DataFrame, columns: list[str]) -> tuple[list[str], np.ndarray]:
        column = _one_column(self, path, columns)
        check_column(path, table, column, lambda v: None if is_number(v) else "expected a number")
        return [column], pd.to_numeric(table[column]).to_numpy(dtype=np.float32)[:, None]

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.std + self.mean

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if len(targets) < 2:  # R² needs two records
            return torch.tensor(float("nan"), device=outputs.device)
        return r2_score(outputs[:, 0], targets[:, 0])

    def metrics(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        return regression_metrics(targets, outputs)

    def thresholds(self, targets: np.ndarray, outputs: np.ndarray) -> None:
        return None

    def labels(self, probabilities: pd.DataFrame, thresholds: Sequence[float] | None) -> None:
        return None

    def folds(self, targets: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
        return stratified_folds(_quintiles(targets), num_folds, seed)

    def subset(self, targets: np.ndarray, fraction: float, seed: int) -> np.ndarray:
        return stratified_subset(_quintiles(targets), fraction, seed)


KINDS: dict[str, type[TaskKind]] = {kind.name: kind for kind in (MultiLabel, MultiClass, Regression)}


def task_kind(name: str, target_mean: float = 0.0, target_std: float = 1.0, regression_loss: str = "mse") -> TaskKind:
    """The kind called ``name``; the regression options apply to regression only."""
    if name not in KINDS:
        raise ValueError(f"kind: expected one of {tuple(KINDS)}, got {name!r}")
    if name == Regression.name:
        return Regression(target_mean, target_std, regression_loss)
    return KINDS[name]()


def is_number(value: object) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def is_binary(value: object) -> bool:
    return is_number(value) and float(value) in (0.0, 1.0)


def _one_column(kind: TaskKind, path: Path, columns: list[str]) -> str:
    if len(columns) != 1:
        raise TableError(f"{path}: kind={kind.name} takes one label column, got {columns} (dataset.labels)")
    return columns[0]


def _indicators(targets: np.ndarray) -> np.ndarray:
    """Multi-hot targets as the library's label indicator matrix (one class: itself and its complement)."""
    positive = np.asarray(targets) > 0
    return np.concatenate([positive, ~positive], axis=1) if positive.shape[1] == 1 else positive


def _quintiles(targets: np.ndarray) -> np.ndarray:
    values = np.asarray(targets)[:, 0]
    return np.searchsorted(np.quantile(values, [0.2, 0.4, 0.6, 0.8]), values, side="right")


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction <= 1:
        raise ValueError(f"dataset.train_fraction: expected a number in (0, 1], got {fraction}")

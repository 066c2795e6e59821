"""Macro ROC-AUC and its bootstrap, as the PTB-XL benchmark reports them (ECG-JEPA finetune.py and
scripts/bootstrap_test_set.py), and the other metrics of a labelled dataset: accuracy and macro F1 of single-label
tasks, MAE and R² of regression.

The AUROC is torchmetrics' exact one (no threshold binning), equal to scikit-learn
``roc_auc_score(average='macro')`` on multi-hot (or one-hot, for ST-MEM) targets up to float32 rounding
(torchmetrics divides its integer counts in the default dtype). Inputs are validated here, once, and
torchmetrics' own validation (a ``torch.unique`` over the whole target, slow inside a bootstrap) is skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics.functional import mean_absolute_error, r2_score
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score, multilabel_auroc

# A bootstrap gives up after this many draws per requested resample (the benchmark loops forever).
MAX_DRAWS_PER_RESAMPLE = 1000


def _as_tensors(targets: np.ndarray, probs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    targets = np.asarray(targets)
    probs = np.asarray(probs)
    if targets.ndim != 2 or targets.shape != probs.shape:
        raise ValueError(
            f"targets and probs must be (records, classes) arrays of one shape, got {targets.shape} and {probs.shape}"
        )
    if not np.isfinite(probs).all():
        raise ValueError("probs contain NaN or infinite values")
    return torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(targets > 0, dtype=torch.long)


def _undefined_classes(targets: np.ndarray) -> list[int]:
    positives = (np.asarray(targets) > 0).sum(axis=0)
    return [int(i) for i in np.flatnonzero((positives == 0) | (positives == len(targets)))]


def _check_defined(targets: np.ndarray) -> None:
    undefined = _undefined_classes(targets)
    if undefined:
        raise ValueError(
            f"AUROC is undefined for class column(s) {undefined}: no positive or no negative record "
            "(scikit-learn raises here; torchmetrics would silently score them)"
        )


def per_class_auroc(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC of every class (column), float64 array of shape (classes,)."""
    preds, target = _as_tensors(targets, probs)
    _check_defined(targets)
    return multilabel_auroc(preds, target, num_labels=target.shape[1], average="none", validate_args=False).numpy()


def macro_auroc(targets: np.ndarray, probs: np.ndarray) -> float:
    """Unweighted mean of the per-class AUROCs (the tables' "macro AUC")."""
    preds, target = _as_tensors(targets, probs)
    _check_defined(targets)
    return float(multilabel_auroc(preds, target, num_labels=target.shape[1], average="macro", validate_args=False))


def bootstrap_auroc(targets: np.ndarray, probs: np.ndarray, n: int = 100, seed: int = 0) -> dict[str, Any]:
    """Macro AUROC over ``n`` resamples of the records (with replacement): mean and 95 % percentile CI.

    As the benchmark's ``get_appropriate_bootstrap_samples``, a resample in which some class has no
    positive (or no negative) record is redrawn rather than scored, so every score is defined.
    """
    targets = np.asarray(targets) > 0
    probs = np.asarray(probs)
    _check_defined(targets)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    num = len(targets)
    scores: list[float] = []
    for _ in range(n * MAX_DRAWS_PER_RESAMPLE):
        rows = rng.integers(0, num, num)
        positives = targets[rows].sum(axis=0)
        if positives.min() > 0 and positives.max() < num:
            scores.append(macro_auroc(targets[rows], probs[rows]))
            if len(scores) == n:
                break
    else:
        raise RuntimeError(
            f"only {len(scores)} of {n} bootstrap resamples kept a positive and a negative record of "
            f"every class in {n * MAX_DRAWS_PER_RESAMPLE} draws: classes too rare among {num} records"
        )
    values = np.asarray(scores)
    return {
        "mean": float(values.mean()),
        "low": float(np.percentile(values, 2.5)),
        "high": float(np.percentile(values, 97.5)),
        "scores": values,
    }


def f1_thresholds(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per class, the probability threshold (``prob >= threshold`` means positive) with the best F1 on these
    records; 0.5 for a class without a positive record."""
    targets, probs = np.asarray(targets) > 0, np.asarray(probs, dtype=np.float64)
    thresholds = np.full(targets.shape[1], 0.5)
    for c in range(targets.shape[1]):
        if not targets[:, c].any():
            continue
        order = np.argsort(-probs[:, c], kind="stable")
        hits = np.cumsum(targets[order, c])  # true positives when the top k records are called positive
        called = np.arange(1, len(order) + 1)
        f1 = 2 * hits / (called + targets[:, c].sum())
        best = int(np.argmax(f1))
        thresholds[c] = probs[order[best], c]
    return thresholds


def multiclass_metrics(targets: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 of the most probable class against one-hot ``targets``."""
    target = torch.as_tensor(np.asarray(targets).argmax(axis=1))
    predicted = torch.as_tensor(np.asarray(probs).argmax(axis=1))
    num_classes = np.asarray(targets).shape[1]
    return {
        "accuracy": float(multiclass_accuracy(predicted, target, num_classes, average="micro")),
        "macro_f1": float(multiclass_f1_score(predicted, target, num_classes, average="macro")),
    }


def regression_metrics(targets: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Mean absolute error and coefficient of determination of ``values`` against ``targets`` (records, 1)."""
    target = torch.as_tensor(np.asarray(targets, dtype=np.float64)[:, 0])
    value = torch.as_tensor(np.asarray(values, dtype=np.float64)[:, 0])
    return {"mae": float(mean_absolute_error(value, target)), "r2": float(r2_score(value, target))}


def bootstrap_r2(targets: np.ndarray, values: np.ndarray, n: int = 100, seed: int = 0) -> dict[str, Any]:
    """R² over ``n`` resamples of the records (with replacement): mean and 95 % percentile CI."""
    targets, values = np.asarray(targets, dtype=np.float64)[:, 0], np.asarray(values, dtype=np.float64)[:, 0]
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if np.ptp(targets) == 0:
        raise ValueError(f"R² is undefined: all {len(targets)} test targets equal {targets[0]:g}")
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(n):
        rows = rng.integers(0, len(targets), len(targets))
        total = np.square(targets[rows] - targets[rows].mean()).sum()
        scores.append(1 - np.square(targets[rows] - values[rows]).sum() / total if total > 0 else np.nan)
    kept = np.asarray(scores)[np.isfinite(scores)]  # a resample of one repeated record has no R²
    return {
        "mean": float(kept.mean()),
        "low": float(np.percentile(kept, 2.5)),
        "high": float(np.percentile(kept, 97.5)),
        "scores": kept,
    }

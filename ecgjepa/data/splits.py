"""Folds, seeded splits and subsets of records stratified by one key per record (a class, a quintile: see
:mod:`ecgjepa.data.kinds`), and the checks that keep every split scorable."""

from __future__ import annotations

import numpy as np


def stratified_folds(keys: np.ndarray, num_folds: int = 10, seed: int = 0) -> np.ndarray:
    """Folds 1..num_folds: within each key the records are shuffled with ``seed`` and dealt out in turn, so every
    fold gets its share of every key (a key with fewer records than folds reaches fewer folds)."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(keys), dtype=np.int64)
    offset = 0
    for key in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == key))
        folds[members] = (offset + np.arange(len(members))) % num_folds + 1
        offset += len(members)
    return folds


def stratified_subset(keys: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of a seeded subset holding ``fraction`` of the records of each key (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"dataset.train_fraction: expected a number in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(keys))
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(members)[: max(1, round(fraction * len(members)))]
        for members in (np.flatnonzero(keys == key) for key in np.unique(keys))
    ]
    return np.sort(np.concatenate(chosen))


def split_by_folds(folds: np.ndarray, val_fold: int = 9, test_fold: int = 10) -> dict[str, np.ndarray]:
    """Row indices of the train / val / test splits: ``val_fold``, ``test_fold``, all other folds.

    Unlike the original, refuses overlapping or empty splits, which would silently leak or crash later.
    """
    if val_fold == test_fold:
        raise ValueError(f"val_fold and test_fold are both {val_fold}; they must differ")
    folds = np.asarray(folds)
    splits = {
        "train": np.flatnonzero((folds != val_fold) & (folds != test_fold)),
        "val": np.flatnonzero(folds == val_fold),
        "test": np.flatnonzero(folds == test_fold),
    }
    present = sorted(int(f) for f in np.unique(folds))
    for name, rows in splits.items():
        if rows.size == 0:
            which = {"val": f"fold {val_fold}", "test": f"fold {test_fold}"}.get(name, "the remaining folds")
            raise ValueError(f"the {name} split is empty: no record in {which} (folds present: {present})")
    return splits


def check_classes_present(targets: np.ndarray, split_name: str, classes: list[str]) -> None:
    """Raise if some class has no positive or no negative record in a split: its AUROC is undefined."""
    targets = np.asarray(targets)
    if targets.ndim != 2 or targets.shape[1] != len(classes):
        raise ValueError(f"targets of shape {targets.shape} do not match the {len(classes)} classes")
    positives = (targets > 0).sum(axis=0)
    problems = []
    for name, count in zip(classes, positives, strict=True):
        if count == 0:
            problems.append(f"class {name!r} has no positive record")
        elif count == len(targets):
            problems.append(f"class {name!r} has no negative record")
    if problems:
        raise ValueError(f"{'; '.join(problems)} in the {split_name} (its AUROC is undefined)")


def undefined_auroc_classes(targets: np.ndarray, splits: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of the classes without a positive or without a negative record in some split."""
    mask = np.zeros(targets.shape[1], dtype=bool)
    for rows in splits.values():
        positives = (targets[rows] > 0).sum(axis=0)
        mask |= (positives == 0) | (positives == len(rows))
    return mask

"""Folds, seeded stratified splits and subsets of labelled records (ecgjepa.data.splits)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgjepa.core.dump_format import record_fold
from ecgjepa.data.splits import (
    check_classes_present,
    split_by_folds,
    stratified_folds,
    stratified_subset,
)


def test_record_fold_depends_on_the_file_name_only() -> None:
    assert record_fold("georgia/g1/E00001") == record_fold("E00001") == record_fold("clinic\\E00001")
    folds = [record_fold(f"A{i:04d}") for i in range(1, 2001)]
    counts = np.bincount(folds, minlength=11)[1:]
    assert counts.min() > 150 and counts.max() < 250  # about 200 each
    assert record_fold("A0001") == record_fold("A0001", num_folds=10)


def test_stratified_folds_share_every_key_and_follow_the_seed() -> None:
    keys = np.repeat([0, 1, 2], [50, 30, 20])
    folds = stratified_folds(keys, 10, seed=0)
    for key, size in ((0, 50), (1, 30), (2, 20)):
        assert np.bincount(folds[keys == key], minlength=11)[1:].tolist() == [size // 10] * 10
    assert np.array_equal(folds, stratified_folds(keys, 10, seed=0))
    assert not np.array_equal(folds, stratified_folds(keys, 10, seed=1))


def test_stratified_subset_keeps_each_keys_share_and_at_least_one() -> None:
    keys = np.repeat([0, 1, 2], [100, 40, 3])
    subset = stratified_subset(keys, 0.1, seed=0)
    assert np.bincount(keys[subset]).tolist() == [10, 4, 1]
    assert np.array_equal(subset, np.sort(subset)) and np.array_equal(subset, stratified_subset(keys, 0.1, seed=0))
    assert np.array_equal(stratified_subset(keys, 1.0, seed=3), np.arange(len(keys)))
    with pytest.raises(ValueError, match=r"dataset.train_fraction: expected a number in \(0, 1\], got 0"):
        stratified_subset(keys, 0, seed=0)


def test_split_by_folds() -> None:
    folds = np.array([1, 9, 10, 2, 9, 8, 10, 3])
    splits = split_by_folds(folds)
    np.testing.assert_array_equal(splits["train"], [0, 3, 5, 7])
    np.testing.assert_array_equal(splits["val"], [1, 4])
    np.testing.assert_array_equal(splits["test"], [2, 6])
    with pytest.raises(ValueError, match="val_fold and test_fold are both 9"):
        split_by_folds(folds, val_fold=9, test_fold=9)
    with pytest.raises(ValueError, match="the val split is empty: no record in fold 5"):
        split_by_folds(folds, val_fold=5)
    with pytest.raises(ValueError, match="the train split is empty"):
        split_by_folds(np.array([9, 10]))


def test_check_classes_present() -> None:
    targets = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32)
    check_classes_present(np.array([[1, 0], [0, 1]]), "test fold 10", ["A", "B"])
    with pytest.raises(ValueError, match="AUROC is undefined") as err:
        check_classes_present(targets, "validation fold 9", ["A", "X", "Y"])
    message = str(err.value)
    assert "class 'X' has no positive record" in message
    assert "class 'Y' has no negative record" in message
    assert "in the validation fold 9" in message
    assert "'A'" not in message

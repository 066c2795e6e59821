"""Task kinds (ecgjepa.data.kinds): losses and outputs against hand computations, stratified folds and subsets,
named predictions, and the domain checks of a labels table's columns."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgjepa.core.manifest import TableError
from ecgjepa.data.kinds import MultiClass, MultiLabel, Regression, task_kind


def test_losses_and_outputs_equal_hand_computations() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    sigmoid = 1 / (1 + np.exp(-logits.numpy()))
    bce = -np.mean(targets.numpy() * np.log(sigmoid) + (1 - targets.numpy()) * np.log(1 - sigmoid))
    assert MultiLabel().loss(logits, targets).item() == pytest.approx(bce, rel=1e-6)
    np.testing.assert_allclose(MultiLabel().outputs(logits).numpy(), sigmoid, rtol=1e-6)
    softmax = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(axis=1, keepdims=True)
    cross_entropy = -np.mean(np.log(softmax[[0, 1], [0, 1]]))
    assert MultiClass().loss(logits, targets).item() == pytest.approx(cross_entropy, rel=1e-6)
    np.testing.assert_allclose(MultiClass().outputs(logits).numpy(), softmax, rtol=1e-6)
    regression = Regression(mean=60.0, std=10.0, loss="l1")
    values = torch.tensor([[70.0], [40.0]])
    # standardised targets 1 and -2 against predictions 2 and 0.5: |1 - 2| and |-2 - 0.5|
    assert regression.loss(logits[:, :1], values).item() == pytest.approx((1.0 + 2.5) / 2)
    np.testing.assert_allclose(regression.outputs(logits[:, :1]).numpy(), [[80.0], [65.0]])


def test_task_kind_names_an_unknown_kind_and_loss() -> None:
    assert isinstance(task_kind("multilabel"), MultiLabel) and task_kind("regression", 1.0, 2.0).std == 2.0
    with pytest.raises(ValueError, match="kind: expected one of"):
        task_kind("ordinal")
    with pytest.raises(ValueError, match="dataset.regression_loss"):
        task_kind("regression", regression_loss="huber")


def test_multilabel_folds_are_iteratively_stratified_and_seeded() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((400, 6)) < np.array([0.5, 0.2, 0.1, 0.05, 0.03, 0.02])).astype(np.float32)
    folds = MultiLabel().folds(targets, 10, seed=0)
    assert sorted(np.unique(folds)) == list(range(1, 11))
    for c in range(targets.shape[1]):
        per_fold = np.bincount(folds[targets[:, c] > 0], minlength=11)[1:]
        assert per_fold.max() - per_fold.min() <= 1, (c, per_fold)  # every class spread evenly
    assert np.array_equal(folds, MultiLabel().folds(targets, 10, seed=0))
    assert not np.array_equal(folds, MultiLabel().folds(targets, 10, seed=1))


def test_subsets_keep_every_class_and_follow_the_seed() -> None:
    rng = np.random.default_rng(1)
    targets = (rng.random((300, 4)) < np.array([0.4, 0.2, 0.1, 0.05])).astype(np.float32)
    subset = MultiLabel().subset(targets, 0.2, seed=3)
    assert len(subset) == 60 and np.array_equal(subset, np.sort(subset))
    assert (targets[subset].sum(axis=0) > 0).all()
    assert np.array_equal(subset, MultiLabel().subset(targets, 0.2, seed=3))
    assert np.array_equal(MultiLabel().subset(targets, 1.0, seed=3), np.arange(300))
    one_hot = np.eye(3)[np.repeat([0, 1, 2], [100, 40, 3])]
    assert np.bincount(one_hot[MultiClass().subset(one_hot, 0.1, seed=0)].argmax(axis=1)).tolist() == [10, 4, 1]
    values = np.arange(50, dtype=np.float32)[:, None]
    folds = Regression().folds(values, 10, seed=0)
    assert all(len(np.unique(folds[i * 10 : (i + 1) * 10])) == 10 for i in range(5))  # each quintile in every fold


def test_named_predictions() -> None:
    table = pd.DataFrame([[0.9, 0.2], [0.4, 0.6]], columns=["AF", "RBBB"], index=["a", "b"])
    assert MultiLabel().labels(table, [0.5, 0.5]).tolist() == ["AF", "RBBB"]
    assert MultiLabel().labels(table, [0.3, 0.1]).tolist() == ["AF;RBBB", "AF;RBBB"]
    assert MultiClass().labels(table, None).tolist() == ["AF", "RBBB"]
    assert Regression().labels(table[["AF"]], None) is None


def test_targets_name_the_file_line_and_column_of_a_value_outside_the_domain(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    table = pd.DataFrame({"record": ["a", "b", "c"], "AF": [0, 1, 2], "age": ["61", "x", "50"]})
    with pytest.raises(TableError, match=re.escape(f"{path}: line 4, column 'AF': a multi-label column holds 0 or 1")):
        MultiLabel().targets(path, table, ["AF"])
    with pytest.raises(TableError, match=re.escape(f"{path}: line 3, column 'age': expected a number, got 'x'")):
        Regression().targets(path, table, ["age"])
    with pytest.raises(TableError, match="kind=multiclass takes one label column"):
        MultiClass().targets(path, table, ["AF", "age"])
    classes, targets = MultiClass().targets(path, table, ["age"])
    assert classes == ["50", "61", "x"] and targets.argmax(axis=1).tolist() == [1, 2, 0]

"""Macro AUROC against scikit-learn, and the benchmark-style bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgjepa.metrics import bootstrap_auroc, bootstrap_r2, macro_auroc, per_class_auroc


def random_case(seed: int, records: int = 300, classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((records, classes)) < 0.3).astype(np.float32)
    probs = np.clip(0.25 * targets + rng.random((records, classes)), 0, 1).astype(np.float32)
    return targets, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_auroc_equals_sklearn(seed: int) -> None:
    targets, probs = random_case(seed)
    probs[:, :2] = np.round(probs[:, :2], 1)  # ties, which both must handle alike
    assert macro_auroc(targets, probs) == pytest.approx(roc_auc_score(targets, probs, average="macro"), abs=1e-6)
    np.testing.assert_allclose(per_class_auroc(targets, probs), roc_auc_score(targets, probs, average=None), atol=1e-6)


def test_one_hot_targets_equal_sklearn_ovr() -> None:
    """ST-MEM: one-vs-rest macro AUROC of softmax probabilities over one-hot targets."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 400)
    logits = rng.normal(size=(400, 5)) + np.eye(5)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert macro_auroc(np.eye(5)[labels], probs) == pytest.approx(expected, abs=1e-6)


def test_undefined_auroc_raises() -> None:
    targets, probs = random_case(0)
    targets[:, 2] = 0
    with pytest.raises(ValueError, match=r"undefined for class column\(s\) \[2\]"):
        macro_auroc(targets, probs)
    with pytest.raises(ValueError, match="one shape"):
        macro_auroc(targets, probs[:, :3])
    probs[0, 0] = np.nan
    targets[0, 2] = 1
    with pytest.raises(ValueError, match="NaN"):
        macro_auroc(targets, probs)


def test_bootstrap_redraws_resamples_without_a_positive() -> None:
    """A class with 2 positives in 60 records is missing from ~13 % of resamples: they must be redrawn."""
    targets, probs = random_case(4, records=60, classes=3)
    targets[:, 2] = 0
    targets[[5, 40], 2] = 1
    result = bootstrap_auroc(targets, probs, n=200, seed=0)
    assert result["scores"].shape == (200,)
    assert np.isfinite(result["scores"]).all()

    # the same draws, replayed: the kept resamples are exactly those where every class has a positive
    rng = np.random.default_rng(0)
    kept, rejected = [], 0
    while len(kept) < 200:
        rows = rng.integers(0, 60, 60)
        if targets[rows].sum(axis=0).min() > 0:
            kept.append(roc_auc_score(targets[rows], probs[rows], average="macro"))
        else:
            rejected += 1
    assert rejected > 0
    np.testing.assert_allclose(result["scores"], kept, atol=1e-6)


def test_bootstrap_interval_brackets_point_estimate() -> None:
    targets, probs = random_case(5, records=500)
    point = macro_auroc(targets, probs)
    result = bootstrap_auroc(targets, probs, n=100, seed=1)
    assert result["low"] < point < result["high"]
    assert result["low"] < result["mean"] < result["high"]
    assert result["low"] == pytest.approx(np.percentile(result["scores"], 2.5))
    assert result["high"] == pytest.approx(np.percentile(result["scores"], 97.5))
    again = bootstrap_auroc(targets, probs, n=100, seed=1)
    np.testing.assert_array_equal(again["scores"], result["scores"])


def test_bootstrap_refuses_a_class_without_positive() -> None:
    targets, probs = random_case(6, records=50, classes=3)
    targets[:, 1] = 0
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_auroc(targets, probs, n=10)


def test_bootstrap_r2_names_constant_targets() -> None:
    with pytest.raises(ValueError, match="R² is undefined: all 4 test targets equal 60"):
        bootstrap_r2(np.full((4, 1), 60.0), np.arange(4.0)[:, None])

"""PTB-XL benchmark labels on the full v1.0.1 metadata: class counts, st_mem subset, folds, errors."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgjepa.data.ptbxl import TASKS, is_multiclass, load_labels
from tests.helpers import SAMPLE

EXPECTED_CLASSES = {
    "all": 71,
    "diagnostic": 44,
    "subdiagnostic": 23,
    "superdiagnostic": 5,
    "form": 19,
    "rhythm": 12,
    "st_mem": 5,
}


@pytest.fixture(scope="module")
def labels(ptbxl_dir: Path) -> dict[str, tuple]:
    return {task: load_labels(ptbxl_dir, task) for task in TASKS}


@pytest.mark.parametrize("task", TASKS)
def test_class_counts_and_layout(labels: dict[str, tuple], task: str) -> None:
    ecg_ids, classes, targets, folds = labels[task]
    assert len(classes) == EXPECTED_CLASSES[task]
    assert classes == sorted(classes)
    assert ecg_ids.dtype == np.int64 and folds.dtype == np.int64 and targets.dtype == np.float32
    assert targets.shape == (len(ecg_ids), len(classes)) == (len(folds), len(classes))
    assert np.all(np.diff(ecg_ids) > 0)
    assert set(np.unique(targets)) == {0.0, 1.0}
    assert targets.sum(axis=1).min() >= 1  # no record without a label
    assert targets.sum(axis=0).min() >= 1  # no class without a record
    assert set(np.unique(folds)) == set(range(1, 11))


def test_superdiagnostic_classes(labels: dict[str, tuple]) -> None:
    assert labels["superdiagnostic"][1] == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert labels["st_mem"][1] == ["CD", "HYP", "MI", "NORM", "STTC"]


def test_all_keeps_every_record_and_zero_likelihood_keys(labels: dict[str, tuple]) -> None:
    ecg_ids, classes, targets, _ = labels["all"]
    assert len(ecg_ids) == 21837
    assert ecg_ids[0] == 1  # scp_codes {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}
    assert {c for c, t in zip(classes, targets[0], strict=True) if t} == {"NORM", "LVOLT", "SR"}


def test_st_mem_is_the_single_superclass_subset(labels: dict[str, tuple], ptbxl_dir: Path) -> None:
    """Independent pandas computation of the records with exactly one diagnostic superclass."""
    database = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    statements = pd.read_csv(ptbxl_dir / "scp_statements.csv", index_col=0)
    superclass = statements.loc[statements.diagnostic == 1, "diagnostic_class"].dropna()
    supers = database.scp_codes.map(lambda s: {superclass[k] for k in ast.literal_eval(s) if k in superclass.index})
    single = supers[supers.map(len) == 1]

    ecg_ids, classes, targets, folds = labels["st_mem"]
    np.testing.assert_array_equal(ecg_ids, single.index.to_numpy())
    np.testing.assert_array_equal(targets.sum(axis=1), 1.0)
    assert [classes[i] for i in targets.argmax(axis=1)] == [next(iter(s)) for s in single]
    np.testing.assert_array_equal(folds, database.loc[single.index, "strat_fold"].to_numpy())

    # the same rows of the superdiagnostic task, restricted
    super_ids, _, super_targets, _ = labels["superdiagnostic"]
    rows = np.searchsorted(super_ids, ecg_ids)
    np.testing.assert_array_equal(super_targets[rows], targets)


def test_is_multiclass() -> None:
    assert [task for task in TASKS if is_multiclass(task)] == ["st_mem"]
    with pytest.raises(ValueError, match="unknown PTB-XL task 'ST-MEM'.*st_mem"):
        is_multiclass("ST-MEM")


def test_sample_copy_loads() -> None:
    ecg_ids, classes, targets, _ = load_labels(SAMPLE, "superdiagnostic")
    assert len(ecg_ids) > 0 and set(classes) <= {"CD", "HYP", "MI", "NORM", "STTC"}


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="expected one of all, diagnostic, .*st_mem"):
        load_labels(SAMPLE, "ST-MEM")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="directory not found: .*nowhere"):
        load_labels(tmp_path / "nowhere", "all")
    shutil.copy(SAMPLE / "ptbxl_database.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match="scp_statements.csv"):
        load_labels(tmp_path, "all")
    (tmp_path / "ptbxl_database.csv").unlink()
    shutil.copy(SAMPLE / "scp_statements.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match="ptbxl_database.csv"):
        load_labels(tmp_path, "all")


@pytest.mark.parametrize(
    ("filename", "column"),
    [
        ("ptbxl_database.csv", "ecg_id"),
        ("ptbxl_database.csv", "scp_codes"),
        ("ptbxl_database.csv", "strat_fold"),
        ("scp_statements.csv", "diagnostic"),
        ("scp_statements.csv", "form"),
        ("scp_statements.csv", "rhythm"),
        ("scp_statements.csv", "diagnostic_class"),
        ("scp_statements.csv", "diagnostic_subclass"),
    ],
)
def test_missing_column(tmp_path: Path, filename: str, column: str) -> None:
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(SAMPLE / name, tmp_path)
    broken = pd.read_csv(tmp_path / filename)
    broken.drop(columns=column).to_csv(tmp_path / filename, index=False)
    with pytest.raises(ValueError, match=rf"{filename} lacks the required column\(s\) '{column}'"):
        load_labels(tmp_path, "superdiagnostic")


def test_unreadable_scp_codes(tmp_path: Path) -> None:
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(SAMPLE / name, tmp_path)
    database = pd.read_csv(tmp_path / "ptbxl_database.csv")
    database.loc[1, "scp_codes"] = "{'NORM': 100.0"
    database.to_csv(tmp_path / "ptbxl_database.csv", index=False)
    with pytest.raises(ValueError, match="ecg_id 2 has an unreadable scp_codes"):
        load_labels(tmp_path, "all")

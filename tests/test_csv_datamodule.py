"""``dataset=csv``: one's own labels from a CSV naming real records (PTB-XL ecg_id 1-40 at 500 Hz, sex and age from
the PTB-XL metadata), as multi-class, regression and multi-label tasks, and its bad-input messages."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from ecgjepa.core.manifest import TableError
from ecgjepa.data.csv_datamodule import CSVDataModule, LabelsError
from ecgjepa.eval import run as eval_run
from ecgjepa.predict import main as predict_main
from ecgjepa.utils.hydra import compose_config
from tests.helpers import DATA, FEW_EVAL_STEPS, write_like

RECORDS = DATA / "ptbxl" / "records500" / "00000"


def ptbxl_metadata() -> pd.DataFrame:
    return pd.read_csv(DATA / "ptbxl" / "ptbxl_database.csv.gz", index_col="ecg_id").loc[1:40]


def write_labels(folder: Path, name: str, columns: dict[str, list], records: list[str] | None = None) -> Path:
    """A labels CSV in ``folder`` naming PTB-XL ecg_id 1-40 relative to it."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = ptbxl_metadata()
    names = records or [os.path.relpath(DATA / "ptbxl" / f, folder) for f in meta["filename_hr"]]
    path = folder / name
    pd.DataFrame({"record": names, **columns}).to_csv(path, index=False)
    return path


def csv_overrides(path: Path, data_dir: Path, *more: str) -> list[str]:
    return [
        "encoder=vit_tiny",
        "dataset=csv",
        f"dataset.path={path}",
        f"paths.data_dir={data_dir}",
        *FEW_EVAL_STEPS,
        *more,
    ]


def datamodule(path: Path, data_dir: Path, *more: str) -> CSVDataModule:
    cfg = compose_config("eval", csv_overrides(path, data_dir, *more), data_dir / "unused")
    kwargs = OmegaConf.to_container(cfg.dataset, resolve=True)
    assert kwargs.pop("_target_") == "ecgjepa.data.csv_datamodule.CSVDataModule"
    return CSVDataModule(**kwargs)


def test_a_categorical_column_is_a_multiclass_task_end_to_end(tmp_path: Path) -> None:
    sex = ptbxl_metadata()["sex"].map({0: "male", 1: "female"}).tolist()
    path = write_labels(tmp_path / "labels", "sex.csv", {"sex": sex})
    out = tmp_path / "run"
    metrics = eval_run(compose_config("eval", csv_overrides(path, tmp_path / "data"), out))
    assert (metrics["task"], metrics["kind"], metrics["classes"]) == ("sex", "multiclass", ["female", "male"])
    assert {"test_auroc", "test_accuracy", "test_macro_f1", "val_auroc"} <= set(metrics)
    assert 0 <= metrics["test_accuracy"] <= 1 and sum(metrics["num_records"].values()) == 40
    predictor = json.loads((out / "predictor.json").read_text())
    assert predictor["kind"] == "multiclass" and predictor["classes"] == ["female", "male"]
    # The folds are a seeded, stratified 10-fold split: every fold holds 4 records, 2 of each sex where it can.
    dm = datamodule(path, tmp_path / "data")
    dm.setup()
    assert {name: len(ds) for name, ds in dm.datasets.items()} == {"train": 32, "val": 4, "test": 4}
    assert dm.datasets["val"].targets.sum(axis=0).min() >= 1 and dm.datasets["test"].targets.sum(axis=0).min() >= 1


def test_a_numeric_column_is_a_regression_end_to_end_and_predicted_in_its_units(tmp_path: Path) -> None:
    age = ptbxl_metadata()["age"].tolist()
    path = write_labels(tmp_path / "labels", "age.csv", {"age": age})
    out = tmp_path / "run"
    metrics = eval_run(compose_config("eval", csv_overrides(path, tmp_path / "data", "dataset.kind=regression"), out))
    assert (metrics["kind"], metrics["metric"], metrics["classes"]) == ("regression", "r2", ["age"])
    assert metrics["test_mae"] > 0 and np.isfinite(metrics["test_r2"])
    assert (out / "plots" / "test.png").is_file()
    predict_main([f"run={out}", f"input={RECORDS}", f"output={tmp_path / 'ages.csv'}"])
    ages = pd.read_csv(tmp_path / "ages.csv", index_col="record_id")
    assert list(ages.columns) == ["age"] and len(ages) == 40
    # Untrained, the head predicts about the training mean, in years rather than standardised units.
    assert abs(ages["age"].mean() - np.mean(age)) < 3 * np.std(age)


def test_zero_one_columns_are_multilabel_and_a_fold_column_is_used(tmp_path: Path) -> None:
    meta = ptbxl_metadata()
    codes = meta["scp_codes"].map(eval)
    columns = {name: [int(name in c) for c in codes] for name in ("NORM", "SR")}
    folds = [1 + i % 10 for i in range(40)]
    path = write_labels(tmp_path / "labels", "scp.csv", {**columns, "fold": folds})
    dm = datamodule(path, tmp_path / "data", "dataset.absent_classes=drop")
    dm.setup()
    assert dm.kind == "multilabel" and set(dm.classes) <= {"NORM", "SR"}
    assert sorted(dm.ids["test"]) == sorted(np.asarray(pd.read_csv(path)["record"])[9::10])


def test_train_fraction_is_a_seeded_stratified_subset_of_the_training_folds(tmp_path: Path) -> None:
    sex = ptbxl_metadata()["sex"].tolist()
    path = write_labels(tmp_path / "labels", "sex.csv", {"sex": sex})
    subsets = []
    for seed in (0, 0, 1):
        dm = datamodule(
            path, tmp_path / "data", "dataset.kind=multiclass", "dataset.train_fraction=0.25", f"seed={seed}"
        )
        dm.setup()
        subsets.append(sorted(dm.ids["train"]))
        assert len(dm.datasets["train"]) == 8 and dm.datasets["train"].targets.sum(axis=0).min() >= 1
        assert len(dm.datasets["val"]) == 4 and len(dm.datasets["test"]) == 4
    assert subsets[0] == subsets[1] != subsets[2]


# bad input -------------------------------------------------------------------------------------------------------


def test_a_row_naming_a_missing_record_is_named_by_line(tmp_path: Path) -> None:
    meta = ptbxl_metadata()
    names = [os.path.relpath(DATA / "ptbxl" / f, tmp_path / "labels") for f in meta["filename_hr"]]
    names[6] = "records500/00000/99999_hr"
    path = write_labels(tmp_path / "labels", "sex.csv", {"sex": meta["sex"].tolist()}, names)
    with pytest.raises(LabelsError, match=re.escape("line 8: 'records500/00000/99999_hr'")):
        datamodule(path, tmp_path / "data").setup()
    assert not (tmp_path / "data").exists()  # stopped before reading any record


def test_an_unknown_label_column_is_named_with_the_ones_there(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "labels", "sex.csv", {"sex": ptbxl_metadata()["sex"].tolist()})
    message = "unknown label column(s) ['gender'] (dataset.labels); label columns: ['sex']"
    with pytest.raises(LabelsError, match=re.escape(message)):
        datamodule(path, tmp_path / "data", "dataset.labels=[gender]")


def test_a_record_lacking_a_lead_is_named_and_the_dump_is_kept(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    meta = ptbxl_metadata()
    names = [os.path.relpath(DATA / "ptbxl" / f, labels) for f in meta["filename_hr"]]
    write_like(
        DATA / "ptbxl" / meta["filename_hr"].iat[2], "no_v3", labels, lambda x, n: (np.delete(x, 8, 1), n[:8] + n[9:])
    )
    names[2] = "no_v3"
    path = write_labels(labels, "sex.csv", {"sex": meta["sex"].tolist()}, names)
    with pytest.raises(LabelsError, match=r"1 record\(s\) cannot be used: line 4: 'no_v3': .*missing leads \['V3'\]"):
        datamodule(path, tmp_path / "data").setup()
    dumps = list((tmp_path / "data" / "labelled").iterdir())
    assert len(dumps) == 1 and (dumps[0] / "meta.json").is_file()  # the 39 good records stay dumped
    dm = datamodule(path, tmp_path / "data", "dataset.unusable_records=drop")
    dm.setup()
    assert sum(len(ds) for ds in dm.datasets.values()) == 39 and "no_v3" not in np.concatenate(list(dm.ids.values()))


def test_record_names_that_look_like_numbers_keep_their_text(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    meta = ptbxl_metadata().iloc[:12]
    for i, name in enumerate(meta["filename_hr"]):  # real records, saved under the names 001 ... 012
        write_like(DATA / "ptbxl" / name, f"{i + 1:03d}", labels, lambda x, n: (x, n))
    names = [f"{i + 1:03d}" for i in range(12)]
    path = write_labels(labels, "sex.csv", {"sex": meta["sex"].tolist()}, names)
    records = datamodule(path, tmp_path / "data").load_records()
    assert list(records.ids) == names


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"fold": [*range(1, 11)] * 3 + [11] + [*range(1, 10)]},
            "line 32, column 'fold': expected a fold from 1 to 10",
        ),
        (
            {"fold": ["one"] + [*range(1, 11)] * 3 + [*range(1, 10)]},
            "line 2, column 'fold': expected a fold from 1 to 10",
        ),
        ({"AF": [0, 1] * 19 + [0, 3], "RBBB": [1, 0] * 20}, "line 41, column 'AF': a multi-label column holds 0 or 1"),
    ],
)
def test_a_value_outside_its_column_is_named_with_file_line_and_column(
    tmp_path: Path, columns: dict, message: str
) -> None:
    labels = {"sex": ptbxl_metadata()["sex"].tolist()} if "fold" in columns else {}
    path = write_labels(tmp_path / "labels", "labels.csv", {**labels, **columns})
    kind = ["dataset.kind=multiclass", "dataset.labels=[sex]"] if "fold" in columns else ["dataset.kind=multilabel"]
    with pytest.raises(TableError, match=re.escape(f"{path}: {message}")):
        datamodule(path, tmp_path / "data", *kind).load_records()

"""``ecgjepa-predict``: an evaluation run's named predictions for new records, prepared as in its evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgjepa.data.ptbxl import load_labels
from ecgjepa.eval import run as eval_run
from ecgjepa.predict import main as predict_main
from tests.helpers import DATA, SAMPLE, assert_user_error, short_evaluation


@pytest.fixture(scope="module")
def eval_run_dir(tmp_path_factory: pytest.TempPathFactory, sample_data_dir: Path, tiny_encoder_run: Path) -> Path:
    from ecgjepa.utils.hydra import compose_config

    out = tmp_path_factory.mktemp("linear")
    eval_run(compose_config("eval", [*short_evaluation(sample_data_dir), f"encoder={tiny_encoder_run}"], out))
    return out


def test_predictions_of_the_runs_test_records_equal_its_own(eval_run_dir: Path, tmp_path: Path) -> None:
    """The sample's fold-10 records as a folder of WFDB files (100 Hz): the same probabilities as the evaluation
    wrote for them, the labels by the stored thresholds; a truncated record and one without V6 are listed."""
    ecg_ids, _, _, folds = load_labels(SAMPLE, "superdiagnostic")
    test_ids = ecg_ids[folds == 10]
    chosen = test_ids[[0, 5, 11]]
    records = tmp_path / "records"
    records.mkdir()
    for ecg_id in chosen:
        for suffix in (".hea", ".dat"):
            name = f"{ecg_id:05d}_lr{suffix}"
            shutil.copy(SAMPLE / "records100" / "00000" / name, records / name)
    cut = records / "broken.dat"
    data = (SAMPLE / "records100" / "00000" / "00001_lr.dat").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    (records / "broken.hea").write_text(
        (SAMPLE / "records100" / "00000" / "00001_lr.hea").read_text().replace("00001_lr", "broken")
    )
    header = (DATA / "challenge2021" / "georgia" / "E07500.hea").read_text().replace(" V6", " X")
    (records / "no_v6.hea").write_text(header.replace("E07500", "no_v6"))
    shutil.copy(DATA / "challenge2021" / "georgia" / "E07500.mat", records / "no_v6.mat")

    output = tmp_path / "out" / "predictions.csv"
    predict_main([f"run={eval_run_dir}", f"input={records}", f"output={output}"])
    table = pd.read_csv(output, index_col="record_id")
    predictor = json.loads((eval_run_dir / "predictor.json").read_text())
    classes = predictor["classes"]
    assert list(table.columns) == [*classes, "labels"]
    assert list(table.index) == [f"{e:05d}_lr" for e in chosen]
    expected = np.load(eval_run_dir / "predictions.npz")["test_predictions"][[0, 5, 11]]
    np.testing.assert_allclose(table[classes].to_numpy(), expected, rtol=0, atol=1e-5)
    above = expected >= np.asarray(predictor["thresholds"])
    assert list(table["labels"].fillna("")) == [";".join(np.asarray(classes)[row]) for row in above]
    rejects = pd.read_csv(tmp_path / "out" / "predictions_rejects.csv").set_index("record_id")["reason"]
    assert sorted(rejects.index) == ["broken", "no_v6"]
    assert "missing leads ['V6']" in rejects["no_v6"]


def test_an_array_of_records_is_predicted_too(eval_run_dir: Path, tmp_path: Path) -> None:
    golden = np.load(DATA / "fixtures" / "original_tiny" / "golden.npz")
    np.save(tmp_path / "x.npy", np.repeat(golden["x"][:, :, :1250], 4, axis=2))  # (4, 12, 5000) at 500 Hz
    predict_main([f"run={eval_run_dir}", f"input={tmp_path / 'x.npy'}", f"output={tmp_path / 'p.csv'}"])
    table = pd.read_csv(tmp_path / "p.csv", index_col="record_id")
    assert list(table.index) == [f"x.npy[{i}]" for i in range(4)] and table.notna().all().all()


def test_bad_runs_and_inputs_are_named(eval_run_dir: Path, tmp_path: Path, capsys) -> None:
    assert_user_error(
        capsys,
        lambda: predict_main([f"run={tmp_path}", f"input={tmp_path}", f"output={tmp_path / 'p.csv'}"]),
        f"run={tmp_path}: no predictor.json",
    )
    assert_user_error(
        capsys,
        lambda: predict_main([f"run={eval_run_dir}", f"input={tmp_path}", f"output={tmp_path / 'p.csv'}"]),
        f"no record found under {tmp_path}",
    )
    assert_user_error(capsys, lambda: predict_main(["run=x", "input=y"]), "missing ['output']")

"""``dataset=challenge2021`` end to end on a folder of real records: the Challenge 2021 records (10-25 s, Dx labels),
the 1000 Hz Challenge 2020 PTB record and two PTB-XL records at 100 Hz, dumped with ``data_prep folder``,
pre-trained on with the test folds held out, evaluated as ``dataset=challenge2021`` and as ``dataset=csv`` built
from the headers, and predicted with ``ecgjepa-predict``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_prep.__main__ import main as data_prep_main
from ecgjepa.core.dump_format import record_fold
from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.core.records import header_dx
from ecgjepa.data.challenge2021_datamodule import Challenge2021DataModule, class_names
from ecgjepa.data.challenge2021_scoring import ChallengeScoring
from ecgjepa.data.pretrain import MixtureBatches, parse_sources
from ecgjepa.eval import run as eval_run
from ecgjepa.predict import main as predict_main
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import compose_config
from tests.helpers import DATA, FEW_EVAL_STEPS

SHORT_EVAL = [*FEW_EVAL_STEPS, "dataset.absent_classes=drop"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(raw folder, data root with its folder dump ``own``)."""
    raw = tmp_path_factory.mktemp("clinic")
    shutil.copytree(DATA / "challenge2021", raw / "challenge2021", ignore=shutil.ignore_patterns("scoring"))
    shutil.copytree(DATA / "challenge2020" / "ptb", raw / "ptb_1000hz")
    shutil.copytree(DATA / "ptbxl" / "records100" / "01000", raw / "ptbxl_100hz")
    data = tmp_path_factory.mktemp("data")
    args = ["folder", "--raw", str(raw), "--out", str(data), "--name", "own", "--workers", "1", "--no-progress"]
    assert data_prep_main(args) == 0
    return raw, data


def headers(raw: Path) -> dict[str, tuple[str, ...]]:
    """Record id (path relative to ``raw``) -> the header's Dx codes, read here without the dump."""
    found = {}
    for path in sorted(raw.rglob("*.hea")):
        comments = [line[1:] for line in path.read_text().splitlines() if line.startswith("#")]
        found[path.relative_to(raw).with_suffix("").as_posix()] = header_dx(comments)
    return found


def test_the_dump_keeps_every_rate_and_the_header_diagnoses(corpus: tuple[Path, Path]) -> None:
    raw, data = corpus
    dump = SourceDump(data, "own")
    assert len(dump) == 63 + 1 + 2 and dump.meta["sampling_frequency"] == 500
    assert sorted(set(dump.index["fs_original"])) == [100, 500, 1000]
    labels = pd.read_csv(data / "own" / "labels.csv", dtype=str, keep_default_na=False).set_index("record_id")
    expected = headers(raw)
    assert {rid: tuple(filter(None, dx.split(","))) for rid, dx in labels["dx"].items()} == expected
    assert expected["ptb_1000hz/S0001"] == ("164865005",) and expected["ptbxl_100hz/01000_lr"] == ()


def test_folds_follow_the_record_file_name_and_can_be_kept_out_of_pretraining(corpus: tuple[Path, Path]) -> None:
    _, data = corpus
    dump = SourceDump(data, "own")
    assert record_fold("georgia/E00001") == record_fold("E00001") == record_fold("other/place/E00001")
    folds = dump.record_folds()
    assert set(folds) <= set(range(1, 11)) and len(set(folds)) >= 8
    sources = parse_sources({"own": {"weight": 1.0}})
    kept = MixtureBatches({"own": dump}, sources, 5000, 2, None, holdout_folds=[9, 10]).rows[0]
    assert len(kept) == np.isin(folds, [9, 10], invert=True).sum() < len(dump)
    assert not np.isin(folds[kept], [9, 10]).any()


@pytest.fixture(scope="module")
def pretrained(corpus: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, data = corpus
    out = tmp_path_factory.mktemp("pretrain")
    overrides = ["debug=fast", "data=folder", "data.name=own", f"paths.data_dir={data}", "data.holdout_folds=[9,10]"]
    train_run(compose_config("train", overrides, out))
    return out


def test_challenge2021_benchmark_reports_the_challenge_metric(
    corpus: tuple[Path, Path], pretrained: Path, tmp_path: Path
) -> None:
    raw, data = corpus
    overrides = [f"encoder={pretrained}", "dataset=challenge2021", "dataset.sources=[own]", f"paths.data_dir={data}"]
    metrics = eval_run(compose_config("eval", [*overrides, *SHORT_EVAL], tmp_path))
    assert metrics["task"] == "challenge2021" and 0 <= metrics["test_auroc"] <= 1
    assert set(metrics["classes"]) <= set(class_names(ChallengeScoring.load()))
    assert -1 <= metrics["challenge_score"] <= 1
    # The test records are the records of fold 10, with the labels of their headers.
    common = {"val_fold": 9, "test_fold": 10, "crop_duration": 2.5, "crop_stride": 1.25, "sampling_frequency": 500}
    common |= {"record_duration": 10.0, "batch_size": 8, "num_workers": 0, "absent_classes": "drop"}
    dm = Challenge2021DataModule(str(data), ["own"], "challenge2021", **common)
    dm.setup()
    assert all(record_fold(rid) == 10 for rid in dm.ids["test"])
    dx = headers(raw)
    scoring = ChallengeScoring.load()
    expected = scoring.encode(dx[rid.removeprefix("own/")] for rid in dm.ids["test"])
    columns = [class_names(scoring).index(c) for c in dm.classes]
    assert np.array_equal(dm.datasets["test"].targets, expected[:, columns].astype(np.float32))
    # Perfect outputs for the kept classes score 1 unless a dropped class is positive in the test records.
    perfect = dm.test_metrics(expected[:, columns], expected[:, columns].astype(float), np.full(len(columns), 0.5))
    dropped = np.delete(expected, columns, axis=1).any()
    assert perfect["challenge_score"] == 1.0 or dropped


def test_a_csv_built_from_the_headers_fine_tunes_and_predicts(
    corpus: tuple[Path, Path], pretrained: Path, tmp_path: Path
) -> None:
    raw, data = corpus
    scoring = ChallengeScoring.load()
    dx = headers(raw)
    names = class_names(scoring)
    labels = scoring.encode(dx.values()).astype(int)
    frequent = np.argsort(-labels.sum(axis=0))[:3]
    table = pd.DataFrame(labels[:, frequent], columns=[names[c] for c in frequent])
    table.insert(0, "record", list(dx))
    table.to_csv(raw / "labels.csv", index=False)
    out = tmp_path / "finetune"
    overrides = [f"encoder={pretrained}", "dataset=csv", f"dataset.path={raw / 'labels.csv'}", "protocol=finetune"]
    metrics = eval_run(compose_config("eval", [*overrides, f"paths.data_dir={data}", *SHORT_EVAL], out))
    assert metrics["task"] == "labels" and metrics["kind"] == "multilabel" and metrics["protocol"] == "finetune"
    assert set(metrics["classes"]) <= {names[c] for c in frequent}
    predict_main([f"run={out}", f"input={raw}", f"output={tmp_path / 'predictions.csv'}"])
    predictions = pd.read_csv(tmp_path / "predictions.csv", index_col="record_id")
    rejects = pd.read_csv(tmp_path / "predictions_rejects.csv")
    assert len(predictions) + len(rejects) == 66 and list(predictions.columns) == [*metrics["classes"], "labels"]
    thresholds = json.loads((out / "predictor.json").read_text())["thresholds"]
    assert len(thresholds) == len(metrics["classes"])

"""ONNX (ecgjepa.deploy, ``ecgjepa-export … format=onnx``, ``ecgjepa-predict … engine=onnx``): an encoder and an
evaluation run's classifier on onnxruntime, to within 1e-4 of PyTorch on real PTB-XL records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch

import ecgjepa
from ecgjepa import deploy
from ecgjepa.core.records import RecordRef, folder_spec, prepare_record, read_record
from ecgjepa.export import export
from ecgjepa.predict import main as predict_main
from ecgjepa.runs import load_run
from tests.helpers import DATA

RECORDS = DATA / "ptbxl" / "records500" / "00000"


def real_batch(count: int, samples: int) -> np.ndarray:
    """(count, 12, samples) PTB-XL records 1.. at 500 Hz, each lead z-scored."""
    out = []
    for ecg_id in range(1, count + 1):
        name = f"{ecg_id:05d}_hr"
        x = prepare_record(read_record(RECORDS, RecordRef(name, name)), folder_spec("t", 10.0))[:samples]
        x = x.astype(np.float32)
        out.append(((x - x.mean(0)) / x.std(0)).T)
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


@pytest.mark.parametrize(("batch", "samples"), [(1, 1250), (7, 5000)])
def test_the_encoders_onnx_model_matches_pytorch(tiny_encoder_run: Path, tmp_path: Path, batch: int, samples: int):
    folder = export(tiny_encoder_run, tmp_path / "export", onnx=True)
    assert "## Without PyTorch" in (folder / "README.md").read_text()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    x = real_batch(batch, samples)
    with torch.no_grad():
        expected = ecgjepa.load_encoder(tiny_encoder_run)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"ecg": x})[0], expected, rtol=0, atol=1e-4)


def test_the_classifiers_onnx_model_and_predict_engine_onnx_match_pytorch(tiny_classifier_run: Path, tmp_path: Path):
    folder = export(tiny_classifier_run, tmp_path / "classifier", onnx=True)
    assert {p.name for p in folder.iterdir()} >= {"checkpoints", "predictor.json", "metrics.json", "model.onnx"}
    card = (folder / "README.md").read_text()
    assert "# ECG classifier (superdiagnostic, multilabel)" in card and "crop averaging" in card
    module, _ = load_run(folder)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch, samples in ((1, 1250), (7, 5000), (2, 4000)):
        x = real_batch(batch, samples)
        with torch.no_grad():
            expected = module.outputs(module.inference_logits(torch.from_numpy(x))).numpy()
        np.testing.assert_allclose(session.run(None, {"ecg": x})[0], expected, rtol=0, atol=1e-4)
    tables = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / f"{engine}.csv"
        predict_main([f"run={folder}", f"input={RECORDS}", f"output={out}", f"engine={engine}"])
        tables[engine] = pd.read_csv(out, index_col="record_id", keep_default_na=False)
    assert len(tables["torch"]) == 40
    assert list(tables["onnx"]["labels"]) == list(tables["torch"]["labels"])
    classes = json.loads((folder / "predictor.json").read_text())["classes"]
    np.testing.assert_allclose(tables["onnx"][classes], tables["torch"][classes], rtol=0, atol=1e-4)
    run_table = tmp_path / "run.csv"
    predict_main(
        [f"run={tiny_classifier_run}", f"input={RECORDS}", f"output={run_table}"]
    )  # the run itself, in PyTorch
    pd.testing.assert_frame_equal(pd.read_csv(run_table, index_col="record_id", keep_default_na=False), tables["torch"])


def test_a_mismatch_fails_the_export_and_leaves_no_model(
    tiny_classifier_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy, "TOLERANCE", -1.0)
    with pytest.raises(ValueError, match="onnxruntime differs from PyTorch by"):
        export(tiny_classifier_run, tmp_path / "classifier", onnx=True)
    assert not (tmp_path / "classifier" / "model.onnx").exists()

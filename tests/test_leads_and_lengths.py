"""``leads=`` and records of any length, wherever records enter: ``dataset=csv`` evaluation, ``ecgjepa-predict``,
``ecgjepa-embed`` and the export's card, on real PTB-XL and CPSC 2018 records cut to fewer leads or seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgjepa.core.leads import lead_columns, lead_subset
from ecgjepa.core.manifest import input_records
from ecgjepa.data.csv_datamodule import CSVDataModule
from ecgjepa.embed import main as embed_main
from ecgjepa.eval import run as eval_run
from ecgjepa.export import export
from ecgjepa.modules.classifier import crop_batch
from ecgjepa.predict import main as predict_main
from ecgjepa.runs import load_run, prepared
from ecgjepa.utils.hydra import compose_config
from tests.helpers import DATA, FEW_EVAL_STEPS, assert_user_error, write_like

PTBXL = pd.read_csv(DATA / "ptbxl" / "ptbxl_database.csv.gz", index_col="ecg_id").loc[1:40]
CPSC = DATA / "challenge2021" / "cpsc_2018"


def keep_leads(*names: str):
    def edit(x: np.ndarray, sig_name: list[str]) -> tuple[np.ndarray, list[str]]:
        columns = [sig_name.index(name) for name in names]
        return x[:, columns], [sig_name[c] for c in columns]

    return edit


def keep_seconds(seconds: float, fs: float = 500):
    return lambda x, sig_name: (x[: round(seconds * fs)], sig_name)


def labelled_folder(folder: Path, edit) -> Path:
    """PTB-XL ecg_id 1-40 written into ``folder`` after ``edit``, with a labels CSV of their sex."""
    folder.mkdir(parents=True)
    names = []
    for ecg_id, row in PTBXL.iterrows():
        write_like(DATA / "ptbxl" / row["filename_hr"], f"{ecg_id:05d}", folder, edit)
        names.append(f"{ecg_id:05d}")
    path = folder / "sex.csv"
    pd.DataFrame({"record": names, "sex": PTBXL["sex"].map({0: "male", 1: "female"}).tolist()}).to_csv(
        path, index=False
    )
    return path


def csv_eval(labels: Path, data_dir: Path, out: Path, *more: str) -> Path:
    overrides = ["encoder=vit_tiny", "dataset=csv", f"dataset.path={labels}", f"paths.data_dir={data_dir}"]
    eval_run(compose_config("eval", [*overrides, *FEW_EVAL_STEPS, *more], out))
    return out


def test_lead_subsets_are_named_in_canonical_order_and_bad_names_are_refused() -> None:
    assert lead_subset("[ii,I]") == ("I", "II") and lead_subset(None)[-1] == "V6"
    with pytest.raises(ValueError, match=r"leads: unknown \['V7'\]"):
        lead_subset(["I", "V7"])
    with pytest.raises(ValueError, match=r"missing leads \['II'\] of leads=\['I', 'II'\]"):
        lead_columns(["I"], ("I", "II"))
    with pytest.raises(ValueError, match=r"pass leads=\[I\]"):
        lead_columns(["I"])


@pytest.fixture(scope="module")
def two_lead_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An evaluation of records holding only leads I and II, with leads=[I,II]: (run dir, records folder)."""
    root = tmp_path_factory.mktemp("two_leads")
    labels = labelled_folder(root / "records", keep_leads("I", "II"))
    return csv_eval(labels, root / "data", root / "run", "leads=[I,II]"), labels.parent


def test_records_of_two_leads_evaluate_and_predict_as_twelve_lead_records_do(
    two_lead_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run_dir, records = two_lead_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    predictor = json.loads((run_dir / "predictor.json").read_text())
    assert predictor["leads"] == ["I", "II"] and np.isfinite(metrics["test_auroc"])
    assert predictor["mean"][2:] == [0.0] * 10 and predictor["std"][2:] == [1.0] * 10
    full = tmp_path / "full"
    full.mkdir()
    for ecg_id, row in PTBXL.iloc[:6].iterrows():  # the same records with all twelve leads
        write_like(DATA / "ptbxl" / row["filename_hr"], f"{ecg_id:05d}", full, lambda x, n: (x, n))
    write_like(DATA / "ptbxl" / PTBXL["filename_hr"].iat[7], "only_i", full, keep_leads("I"))
    predict_main([f"run={run_dir}", f"input={records}", f"output={tmp_path / 'two.csv'}"])
    predict_main([f"run={run_dir}", f"input={full}", f"output={tmp_path / 'twelve.csv'}"])
    two = pd.read_csv(tmp_path / "two.csv", index_col="record_id")
    twelve = pd.read_csv(tmp_path / "twelve.csv", index_col="record_id")
    assert len(two) == 40
    np.testing.assert_allclose(twelve[["female", "male"]], two.loc[twelve.index, ["female", "male"]], atol=1e-6)
    rejects = pd.read_csv(tmp_path / "twelve_rejects.csv", index_col="record_id")
    assert (
        list(rejects.index) == ["only_i"]
        and "missing leads ['II'] of leads=['I', 'II']" in rejects.at["only_i", "reason"]
    )


def test_records_of_lead_one_only_evaluate_and_are_refused_without_leads(tmp_path: Path) -> None:
    labels = labelled_folder(tmp_path / "records", keep_leads("I"))
    kwargs = dict(compose_config("eval", ["dataset=csv", f"dataset.path={labels}"], tmp_path / "x").dataset)
    kwargs = {k: v for k, v in kwargs.items() if k != "_target_"} | {"data_dir": str(tmp_path / "data")}
    kwargs |= {"crop_duration": 2.5, "crop_stride": 1.25, "batch_size": 8, "num_workers": 0, "subset_seed": 0}
    with pytest.raises(ValueError, match=r"every record was rejected \(40 x .*pass leads=\[I\]"):
        CSVDataModule(**kwargs).setup()
    dm = CSVDataModule(**kwargs | {"leads": ["I"]})
    dm.setup()
    x, _, _, _ = next(iter(dm.val_dataloader()))
    assert x[:, 0].abs().sum() > 0 and torch.count_nonzero(x[:, 1:]) == 0


def test_embed_takes_a_lead_subset_and_the_export_declares_it(
    tiny_encoder_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    one, full = tmp_path / "one", tmp_path / "full"
    one.mkdir(), full.mkdir()
    for ecg_id, row in PTBXL.iloc[:3].iterrows():
        write_like(DATA / "ptbxl" / row["filename_hr"], f"{ecg_id:05d}", one, keep_leads("I"))
        write_like(DATA / "ptbxl" / row["filename_hr"], f"{ecg_id:05d}", full, lambda x, n: (x, n))
    refused = [f"encoder={tiny_encoder_run}", f"input={one}", f"output={tmp_path / 'no.npy'}"]
    assert_user_error(capsys, lambda: embed_main(refused), "input=", "no usable record", "pass leads=[I]")
    export(tiny_encoder_run, tmp_path / "export", "[I]")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["input"]["leads_used"] == ["I"]
    assert "leads used: I; the others enter as zeros" in (tmp_path / "export" / "README.md").read_text()
    embed_main([f"encoder={tmp_path / 'export'}", f"input={one}", f"output={tmp_path / 'one.npy'}"])
    embed_main([f"encoder={tiny_encoder_run}", f"input={full}", f"output={tmp_path / 'full.npy'}", "leads=[I]"])
    np.testing.assert_allclose(np.load(tmp_path / "one.npy"), np.load(tmp_path / "full.npy"), atol=1e-5)


@pytest.fixture(scope="module")
def records_of_three_lengths(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real CPSC 2018 records cut to 2.5 s, 8 s and 20 s (A0005 is 25 s long)."""
    folder = tmp_path_factory.mktemp("lengths")
    for name, seconds in (("A0002", 2.5), ("A0003", 8.0), ("A0005", 20.0)):
        write_like(CPSC / name, f"{name}_{round(seconds * 1000)}ms", folder, keep_seconds(seconds))
    return folder


def test_records_of_any_length_get_the_crops_that_fit(records_of_three_lengths: Path, tmp_path: Path) -> None:
    sizes = {"A0002_2500ms": 1, "A0003_8000ms": 5, "A0005_20000ms": 15}
    folder = tmp_path / "records"
    folder.mkdir()
    for name in sizes:  # ten copies of each under their own names: three per fold
        for k in range(10):
            for suffix in (".hea", ".dat"):
                text = (records_of_three_lengths / f"{name}{suffix}").read_bytes()
                if suffix == ".hea":
                    text = text.replace(name.encode(), f"{name}_{k}".encode())
                (folder / f"{name}_{k}{suffix}").write_bytes(text)
    names = [f"records/{name}_{k}" for name in sizes for k in range(10)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"record": names, "y": [float(i) for i in range(len(names))]}).to_csv(labels, index=False)
    kwargs = dict(compose_config("eval", ["dataset=csv", f"dataset.path={labels}"], tmp_path / "x").dataset)
    kwargs = {k: v for k, v in kwargs.items() if k != "_target_"} | {"data_dir": str(tmp_path / "data")}
    kwargs |= {"crop_duration": 2.5, "crop_stride": 1.25, "batch_size": 3, "num_workers": 0, "subset_seed": 0}
    kwargs |= {"kind": "regression", "split_seed": 0}
    dm = CSVDataModule(**kwargs)
    dm.setup()
    assert sum(map(len, dm.datasets.values())) == 30  # the 2.5 s records are kept
    for x, _, positions, lengths in dm.test_dataloader()[1]:
        _, counts = crop_batch(x, lengths, 1250, 625)
        ids = dm.ids["test"][positions.numpy()]
        assert counts == [sizes[Path(i).name.rsplit("_", 1)[0]] for i in ids]


def test_predict_averages_the_crops_that_fit(
    two_lead_run: tuple[Path, Path], records_of_three_lengths: Path, tmp_path: Path
) -> None:
    run_dir, _ = two_lead_run
    module, predictor = load_run(run_dir)
    refs, base = input_records(records_of_three_lengths, None)
    rejects: list[tuple[str, str]] = []
    inputs = dict(prepared(refs, base, predictor, rejects))
    assert rejects == [] and {k: v.shape[-1] for k, v in inputs.items()} == {
        "A0002_2500ms": 1250,
        "A0003_8000ms": 4000,
        "A0005_20000ms": 10000,  # up to record_duration (60 s for dataset=csv)
    }
    out = tmp_path / "p.csv"
    predict_main([f"run={run_dir}", f"input={records_of_three_lengths}", f"output={out}", "batch_size=3"])
    table = pd.read_csv(out, index_col="record_id")
    with torch.no_grad():
        for record_id, x in inputs.items():
            alone = module.outputs(module.inference_logits(torch.from_numpy(x)[None])).numpy()[0]
            np.testing.assert_allclose(table.loc[record_id, ["female", "male"]], alone, atol=1e-6)

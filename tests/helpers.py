"""Helpers and constants the tests share: where the real records are, the original's reference checkpoints, small
builders of configs, dumps and runs."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import wfdb
from omegaconf import DictConfig

from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.models import ModelConfig
from ecgjepa.modules.pretrain import PretrainModule
from ecgjepa.train import build_method
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import load_group_option

REPO = Path(__file__).resolve().parents[1]


DATA = REPO / "tests" / "data"


SAMPLE = REPO / "sample_data" / "ptbxl"


@dataclass(frozen=True)
class OriginalFixture:
    """Checkpoints written by the original ECG-JEPA code and the outputs it computed (README in each folder)."""

    name: str
    dir: Path
    pretrain: Path
    minified: Path
    model_overrides: tuple[str, ...]  # the ``model=...`` overrides that build the same model here
    encoder_tensors: int  # entries of the minified checkpoint's target encoder

    @property
    def golden_npz(self) -> Path:
        return self.dir / "golden.npz"

    @property
    def golden_json(self) -> Path:
        return self.dir / "golden.json"


TINY = OriginalFixture(
    "tiny",
    DATA / "fixtures" / "original_tiny",
    DATA / "fixtures" / "original_tiny" / "orig_tiny_pretrain.pt",
    DATA / "fixtures" / "original_tiny" / "orig_tiny_minified.pt",
    (
        "model=vit_xs",
        "model.dim=48",
        "model.depth=2",
        "model.num_heads=2",
        "model.pred_dim=24",
        "model.pred_depth=2",
        "model.pred_num_heads=2",
    ),
    15,
)


_VIT_XS_DIR = Path(os.environ.get("ECGJEPA_ORIGINAL_FIXTURES", REPO.parent / "shared" / "fixtures" / "original"))


VIT_XS = OriginalFixture(
    "vit_xs",
    _VIT_XS_DIR,
    _VIT_XS_DIR / "orig_dev_pretrain.pt",
    _VIT_XS_DIR / "orig_dev_minified.pt",
    ("model=vit_xs",),
    51,
)


def require(fixture: OriginalFixture) -> OriginalFixture:
    """``fixture`` if its files are here; the ViT-XS set (82 MB) is not shipped, so its tests skip without it."""
    if not fixture.pretrain.is_file():
        pytest.skip(
            f"the original's {fixture.name} reference checkpoints are not at {fixture.dir} "
            "(set ECGJEPA_ORIGINAL_FIXTURES to their folder to run this test)"
        )
    return fixture


PAPER_SCHEDULE = ("optim=paper", "optim.steps=100000", "optim.learning_rate_warmup_steps=10000")


class ScheduleRecorder(L.Callback):
    """Records, at each optimizer step, the learning rate and weight decay the optimizer is about to apply."""

    def __init__(self) -> None:
        self.lr: list[float] = []
        self.weight_decay: list[float] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        decayed = [g for g in optimizer.param_groups if g.get("use_weight_decay")]
        self.lr.append(optimizer.param_groups[0]["lr"])
        self.weight_decay.append(decayed[0]["weight_decay"])


def make_ptbxl_raw(root: Path, ecg_ids: range, ptbxl_dir: Path) -> Path:
    """A PTB-XL folder with the given records (both rates, symlinked) and the matching CSV rows."""
    table = pd.read_csv(ptbxl_dir / "ptbxl_database.csv")
    table = table[table["ecg_id"].isin(list(ecg_ids))]
    for name in (*table["filename_lr"], *table["filename_hr"]):
        for suffix in (".hea", ".dat"):
            target = root / (name + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(ptbxl_dir / (name + suffix))
    table.to_csv(root / "ptbxl_database.csv", index=False)
    (root / "scp_statements.csv").symlink_to(ptbxl_dir / "scp_statements.csv")
    return root


# Dumps of the real records in tests/data, one per pre-training source; the three sources without real records
# here read another source's dump (``data.sources.<name>.dump``).
STAND_IN_DUMPS = {"code15": "georgia", "st_petersburg": "ningbo", "cpsc_extra": "cpsc"}


def model_config(name: str = "vit_tiny", **overrides: object) -> ModelConfig:
    """The ``model`` option ``name`` of conf/ with the input the data modules give (the canonical leads, 10 s at
    500 Hz), and ``overrides``."""
    option = load_group_option("model", name)
    return ModelConfig.from_dict({**option, "channels": list(CANONICAL_LEADS), "channel_size": 5000, **overrides})


def pretraining_module(cfg: DictConfig) -> PretrainModule:
    """The method's module built as ``ecgjepa-train`` builds it: the model config completed with the input shape
    the pre-training data module gives (the canonical leads, ``data.channel_size`` samples)."""
    input_shape = {"channels": list(CANONICAL_LEADS), "channel_size": cfg.data.channel_size}
    return build_method(cfg, input_shape)


# A few steps of a tiny evaluation on CPU, without a logger (any dataset).
FEW_EVAL_STEPS = (
    "trainer=cpu",
    "logger=none",
    "protocol.steps=4",
    "protocol.checkpoint_interval=2",
    "protocol.batch_size=8",
    "dataset.num_workers=0",
)


def short_evaluation(data_dir: Path) -> list[str]:
    """Overrides of a short CPU evaluation on the bundled sample's dump under ``data_dir``."""
    return [
        "dataset=ptbxl_sample",
        f"paths.data_dir={data_dir}",
        "trainer=cpu",
        "logger=none",
        "task=superdiagnostic",
        "protocol.steps=6",
        "protocol.checkpoint_interval=3",
        "protocol.batch_size=32",
    ]


Edit = Callable[[np.ndarray, pd.DataFrame, dict], tuple[np.ndarray, pd.DataFrame, dict]]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def make_dump(sample_data_dir: Path, root: Path, edit: Edit | None = None, records: int | None = None) -> Path:
    """A copy of the sample's PTB-XL dump (the first ``records`` only) under ``root/ptbxl``, after ``edit``."""
    src, dst = sample_data_dir / "sample" / "ptbxl", root / "ptbxl"
    dst.mkdir(parents=True)
    index = pd.read_csv(src / "index.csv")
    if records is not None:
        index = index.iloc[:records]
    signals = np.array(np.load(src / "signals.npy", mmap_mode="r")[: int((index["start"] + index["length"]).max())])
    meta = json.loads((src / "meta.json").read_text())
    if edit is not None:
        signals, index, meta = edit(signals, index, meta)
    if signals is not None:
        np.save(dst / "signals.npy", signals)
    if index is not None:
        index.to_csv(dst / "index.csv", index=False)
    if meta is not None:
        (dst / "meta.json").write_text(json.dumps(meta))
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copyfile(src / name, dst / name)
    return root


def pretrain_on(train_cfg, data_dir: Path, out: Path, *overrides: str):
    return train_run(
        train_cfg(f"data.data_dir={data_dir}", "data.sources.ptbxl.folds=null", *overrides, output_dir=out)
    )


def env_for(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "ECGJEPA_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def write_like(source: Path, name: str, out_dir: Path, edit, fs: float | None = None) -> None:
    """Write a WFDB record (format 16) `name` from a real record after `edit(signal, sig_name)`."""
    x, fields = wfdb.rdsamp(str(source))
    x, sig_name = edit(x.copy(), list(fields["sig_name"]))
    wfdb.wrsamp(
        name,
        fs=fields["fs"] if fs is None else fs,
        units=["mV"] * len(sig_name),
        sig_name=sig_name,
        p_signal=x,
        fmt=["16"] * len(sig_name),
        adc_gain=[1000.0] * len(sig_name),
        baseline=[0] * len(sig_name),
        write_dir=str(out_dir),
    )


def assert_user_error(capsys: pytest.CaptureFixture, call: Callable[[], object], *named: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        call()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    for text in named:
        assert text in err, err
    return err


# Command-line overrides that give each pre-training method a small network of its own kind for tests: SimCLR and BYOL
# on their source's xresnet1d50 (0.9 M parameters), CPC on a narrow fc_lstm with fewer negatives, MoCo v3 with narrow
# heads; the ViT methods on debug=fast's vit_tiny.
METHOD_TEST_OVERRIDES: dict[str, list[str]] = {
    "jepa": [],
    "st_mem": [],
    "mtae": [],
    "mlae": [],
    "simclr": ["model=xresnet1d50"],
    "byol": ["model=xresnet1d50"],
    "cpc": ["model=fc_lstm", "model.fc_widths=[32,32,32,32]", "model.lstm_hidden=32", "method.negatives=16"],
    "moco_v3": ["method.projector.hidden_dim=64", "method.projector.output_dim=32", "method.predictor.hidden_dim=64"],
    "cmsc": [],
}

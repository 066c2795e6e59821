"""Researcher-facing features: online probe, plots, wandb offline, export + load_encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ecgjepa
from ecgjepa.callbacks.online_probe import fit_logistic_regression
from ecgjepa.export import export
from ecgjepa.formats.layouts import load_encoder_state, load_into
from ecgjepa.models import VisionTransformer
from ecgjepa.train import run


def test_online_probe_logs_auroc_and_curves_are_plotted(train_cfg, tmp_path: Path, sample_data_dir: Path) -> None:
    run(
        train_cfg(
            "logger=csv",
            "callbacks=pretrain_probe",
            "trainer.max_steps=2",
            "callbacks.lr_monitor=null",
            "callbacks.online_probe.every_n_steps=1",
            "callbacks.online_probe.max_train_records=120",
            f"callbacks.online_probe.dataset.data_dir={sample_data_dir / 'sample'}",
        )
    )
    metrics = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    auroc = metrics["probe/val_auroc"].dropna()
    assert len(auroc) == 3 and auroc.between(0, 1).all()  # steps 0, 1, 2
    assert metrics["train/target_std"].notna().any()
    assert (tmp_path / "plots" / "pretrain_curves.png").stat().st_size > 10_000


def test_logistic_regression_separates_separable_data() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = torch.stack([(x[:, 0] > 0).float(), (x[:, 1] > 0).float()], dim=1)
    w, b = fit_logistic_regression(x, y, multiclass=False)
    assert (((x @ w + b) > 0).float() == y).float().mean() > 0.95


def test_wandb_offline_without_network_or_key(train_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = train_cfg("logger=wandb", "trainer.max_steps=2")
    assert cfg.logger.wandb.offline is True
    metrics = run(cfg)
    assert np.isfinite(metrics["train/loss"])
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_export_and_load_encoder_give_the_checkpoint_embeddings(tiny_encoder_run: Path, tmp_path: Path) -> None:
    out = export(tiny_encoder_run, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["input"]["sampling_frequency"] == 500 and config["input"]["patch_size"] == 25
    assert config["pretraining"]["data"] == {"ptbxl": 1.0} and config["pretraining"]["step"] == 5
    assert len(config["normalisation"]["ptbxl"]["mean"]) == 12
    assert "## Evaluation results" in (out / "README.md").read_text()
    encoder = ecgjepa.load_encoder(str(out))
    assert not encoder.training
    cfg, state, _ = load_encoder_state(tiny_encoder_run / "checkpoints" / "last.ckpt")
    reference = VisionTransformer(cfg).eval()
    load_into(reference, state, "last.ckpt")
    x = torch.randn(2, 12, 5000)
    with torch.no_grad():
        assert torch.equal(encoder(x), reference(x))

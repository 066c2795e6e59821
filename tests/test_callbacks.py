"""Callbacks of pre-training (ecgjepa.callbacks): the online probe and the curve plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ecgjepa.callbacks.online_probe import fit_logistic_regression
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

"""The JEPA module (ecgjepa.modules.jepa): a non-finite loss stops the run before any poisoned checkpoint or
export, and the collapse diagnostic is logged."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from ecgjepa.modules.jepa import JEPAModule
from ecgjepa.modules.pretrain import NonFiniteLossError
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import load_group_option
from tests.helpers import load, model_config


class PoisonWeights(L.Callback):
    """Write a NaN into an online-encoder weight just before the training step ``at_step``."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.encoder.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize("interval", [1, 4])
def test_non_finite_loss_stops_before_a_poisoned_checkpoint(train_cfg, tmp_path: Path, interval: int) -> None:
    # interval 1: stops before the poisoned optimiser step; 4: the flag stays on the device until the next
    # checkpoint (here: the next step) reads it. Either way no poisoned checkpoint or export exists.
    cfg = train_cfg(
        "trainer.max_steps=6",
        "optim.steps=6",
        f"finite_check_interval={interval}",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "+callbacks.poison._target_=tests.test_jepa_module.PoisonWeights",
        "+callbacks.poison.at_step=3",
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at global step 3"):
        train_run(cfg)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [
        "last.ckpt",
        "step_000001.ckpt",
        "step_000002.ckpt",
        "step_000003.ckpt",
    ]
    last = load(folder / "last.ckpt")
    assert last["global_step"] == 3  # the last good state, saved before the poisoned step
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "encoder").exists()  # no export of the failed run


def test_deferred_finite_check_still_stops_before_the_export(train_cfg, tmp_path: Path) -> None:
    cfg = train_cfg(
        "trainer.max_steps=5",
        "optim.steps=5",
        "finite_check_interval=50",  # never reached by the step count: the end-of-training check must catch it
        "callbacks.model_checkpoint.every_n_train_steps=100",
        "+callbacks.poison._target_=tests.test_jepa_module.PoisonWeights",
        "+callbacks.poison.at_step=3",
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at global step 3"):
        train_run(cfg)
    assert not (tmp_path / "encoder").exists()


def test_finite_check_interval_must_be_a_positive_integer() -> None:
    tiny = model_config(depth=1).to_dict()
    with pytest.raises(ValueError, match="finite_check_interval: expected an integer >= 1, got 0"):
        JEPAModule(tiny, load_group_option("optim", "paper"), finite_check_interval=0)


def test_target_std_collapse_diagnostic_is_logged(train_cfg, tmp_path: Path) -> None:
    train_run(train_cfg("logger=csv", "trainer.max_steps=3", "optim.steps=3"))
    metrics = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    values = metrics["train/target_std"].dropna()
    assert len(values) == 3 and (values > 0).all() and np.isfinite(values).all()

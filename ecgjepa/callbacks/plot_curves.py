"""Write the pre-training curves as a PNG into the run directory at the end of training."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from ecgjepa.plots import plot_pretrain_curves


class PlotCurves(L.Callback):
    """``<dirpath>/pretrain_curves.png`` from the CSV logger's ``metrics.csv`` (rank 0 only)."""

    def __init__(self, dirpath: str) -> None:
        self.out = Path(dirpath) / "pretrain_curves.png"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                logger.save()
                plot_pretrain_curves(Path(logger.log_dir) / "metrics.csv", self.out)

"""Write the method's exported encoder (JEPA's EMA target encoder) as an encoder export at the end of pre-training."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from ecgjepa.formats.export import export_description, write_export
from ecgjepa.formats.layouts import strip_prefix


class EncoderExport(L.Callback):
    """Save the encoder export (``model.safetensors`` + ``config.json``, see :mod:`ecgjepa.formats.export`) into
    ``dirpath``, with the data module's sampling rate, per-source normalisation constants and source weights, so
    the encoder can be used without the configs."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        preprocess = {
            "sampling_frequency": getattr(dm, "sampling_frequency", None),
            "normalisation": dm.normalisation() if hasattr(dm, "normalisation") else {},
        }
        pretraining = {
            "data": {name: src.weight for name, src in getattr(dm, "sources", {}).items()},
            "step": trainer.global_step,
            "layout": "lightning-pretrain",
            "method": pl_module.method,
        }
        state = strip_prefix(pl_module.state_dict(), pl_module.exported_prefix())
        write_export(self.dirpath, state, export_description(pl_module.model_config, preprocess, pretraining))

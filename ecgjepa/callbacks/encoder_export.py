"""Write the EMA target encoder as a stand-alone artefact at the end of pre-training."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from ecgjepa.checkpoint import save_encoder, strip_prefix


class EncoderExport(L.Callback):
    """Save ``<dirpath>/encoder.pt``: target-encoder weights, model config, preprocessing constants.

    The preprocessing block records the sampling rate, lead order, input length and the per-source
    normalisation constants of the data module, so the encoder can be used without the configs.
    """

    def __init__(self, dirpath: str, filename: str = "encoder.pt") -> None:
        self.path = Path(dirpath) / filename

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        preprocess = {
            "sampling_frequency": getattr(dm, "sampling_frequency", None),
            "channels": list(pl_module.model_config.channels),
            "channel_size": pl_module.model_config.channel_size,
            "normalisation": dm.normalisation() if hasattr(dm, "normalisation") else {},
            "sources": {name: src.weight for name, src in getattr(dm, "sources", {}).items()},
        }
        state = strip_prefix(pl_module.state_dict(), "target_encoder.")
        save_encoder(self.path, pl_module.model_config, state, preprocess, trainer.global_step)

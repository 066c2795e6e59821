"""CPC, contrastive predictive coding (van den Oord et al., 2018), on the 4FC+2LSTM+2FC network as
hhi-aml/ecg-selfsupervised trains it (``main_cpc_lightning.py`` with ``--fc-encoder``, ``clinical_ts/cpc.py``).

The per-step layers encode every input sample; the LSTM summarises the past; a linear map without bias of the LSTM
output at step t predicts the encoding ``steps_ahead`` steps later, scored against ``negatives`` encodings of other
steps of the same sequence (:func:`~ecgjepa.modules.losses.cpc_loss`). The negatives are drawn from a generator seeded
by (seed, rank, step, micro-batch), so a resumed run draws what an uninterrupted one draws.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecgjepa.models.backbones import build_encoder
from ecgjepa.models.fc_lstm import FCLSTM
from ecgjepa.modules.losses import cpc_loss
from ecgjepa.modules.pretrain import PretrainModule, collapse_std


class CPCModule(PretrainModule):
    """The fc_lstm network and CPC's prediction map.

    Args:
        steps_ahead: how many steps later the target lies.
        negatives: negatives per prediction, from the same sequence.
        seed: base seed of the negatives.
        common: the arguments every method takes (``model``, ``optim``, ...: see :class:`PretrainModule`).
    """

    method = "cpc"

    def __init__(
        self,
        steps_ahead: int,
        negatives: int,
        seed: int,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.refuse_block_masks("draws its own negatives")
        self.encoder = build_encoder(self.model_config)
        if not isinstance(self.encoder, FCLSTM):
            raise ValueError(
                f"method=cpc trains the recurrent network (model=fc_lstm), not model={self.model_config.name}"
            )
        cfg = self.model_config
        self.predict = nn.Linear(cfg.lstm_hidden, cfg.fc_widths[-1], bias=False)
        self.steps_ahead, self.negatives, self.seed = steps_ahead, negatives, seed

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        encoded = self.encoder.encode_steps(batch[0])
        context = self.encoder.lstm(encoded)[0]
        generator = self.step_generator(self.seed, batch_idx)
        loss, accuracy = cpc_loss(self.predict(context), encoded, self.steps_ahead, self.negatives, generator)
        return loss, {"accuracy": accuracy, "encoder_std": collapse_std(context.mean(dim=1))}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.predict]

"""4FC+2LSTM+2FC: the recurrent network of hhi-aml/ecg-selfsupervised (``clinical_ts/cpc.py`` ``CPCModel`` with
``--fc-encoder``), written anew from its description.

Four per-time-step fully connected layers (a 1x1 convolution without bias, batch norm, ReLU), a two-layer
unidirectional LSTM; every input sample is one time step. Its source head pools the LSTM outputs by mean, max and
last step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ecgjepa.models.sequence import SequenceEncoder, SequenceEncoderConfig


@dataclass(frozen=True)
class FCLSTMConfig(SequenceEncoderConfig):
    """Attributes (besides :class:`SequenceEncoderConfig`): ``fc_widths`` of the per-step layers,
    ``lstm_hidden`` and ``lstm_layers``."""

    fc_widths: tuple[int, ...]
    lstm_hidden: int
    lstm_layers: int

    ARCH = "fc_lstm"


class FCLSTM(SequenceEncoder):
    def __init__(self, cfg: FCLSTMConfig) -> None:
        super().__init__()
        self.config, self.embed_dim = cfg, cfg.lstm_hidden
        widths = [cfg.in_channels, *cfg.fc_widths]
        self.per_step = nn.Sequential(
            *(
                nn.Sequential(nn.Conv1d(a, b, 1, bias=False), nn.BatchNorm1d(b), nn.ReLU())
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        self.lstm = nn.LSTM(widths[-1], cfg.lstm_hidden, num_layers=cfg.lstm_layers, batch_first=True)

    def layer_groups(self) -> list[nn.Module]:
        """The network's parts from the input up, for discriminative learning rates: per-step layers, LSTM."""
        return [self.per_step, self.lstm]

    def encode_steps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, T, fc width): the per-step layers' output (the CPC targets)."""
        return self.per_step(x).transpose(1, 2)

    def forward(self, x: torch.Tensor, keep_registers: bool = False) -> torch.Tensor:
        return self.lstm(self.encode_steps(x))[0]

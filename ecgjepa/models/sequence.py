"""What the supervised baselines share: their configuration, the source's own head, and initialisation.

Every backbone is a sequence encoder: (batch, leads, samples) -> (batch, time steps, features). The convolutional
networks' time steps are their final feature map; a recurrent network's are its outputs. Each declares the
sampling rate and crop it is trained at, and the head its source trains it with (:class:`ConcatPoolHead`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ecgjepa.models.config import STANDARDISATIONS, strict_fields

POOLS = ("max", "avg", "last")


@dataclass(frozen=True)
class SequenceEncoderConfig:
    """Keys every baseline network has (the values: conf/model/).

    Attributes:
        arch: the network (``inception1d``, ``xresnet1d``, ``fc_lstm``).
        channels: the input's lead names (from the data module); their number is the input width.
        channel_size: samples of a whole record at ``sampling_frequency`` (from the data module); the networks
            take any length.
        sampling_frequency: Hz of the input the network is trained on.
        crop_duration: seconds of one training input (and of the sliding windows of evaluation).
        probe_heads: attention heads of the attentive probe over the network's time steps.
        head_pools: the source head's global pooling over time, concatenated (``max``, ``avg``, ``last``).
        head_hidden: widths of the source head's hidden layers.
        head_dropout: dropout before the source head's output layer (half of it before each hidden layer).
        head_batch_norm: batch norm before each of the source head's layers.
        recipe: the training recipe of the source (conf/recipe/), used by ``protocol=supervised``.
        band_pass, standardise: the input conditioning of a pre-training method (see :class:`ModelConfig`), from
            the data module; the supervised sources' inputs have none beyond the dataset normalisation.
    """

    arch: str
    name: str
    channels: tuple[str, ...]
    channel_size: int
    sampling_frequency: int
    crop_duration: float
    probe_heads: int
    head_pools: tuple[str, ...]
    head_hidden: tuple[int, ...]
    head_dropout: float
    head_batch_norm: bool
    recipe: str
    band_pass: tuple[float, float] | None = dataclasses.field(default=None, kw_only=True)
    standardise: str = dataclasses.field(default="dataset", kw_only=True)

    ARCH: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # lists from YAML become tuples: the config stays hashable and frozen
            if isinstance(getattr(self, field.name), list):
                object.__setattr__(self, field.name, tuple(getattr(self, field.name)))
        if self.standardise not in STANDARDISATIONS:
            raise ValueError(f"model.standardise: expected one of {STANDARDISATIONS}, got {self.standardise!r}")
        if self.arch != self.ARCH:
            raise ValueError(f"model.arch: expected {self.ARCH!r}, got {self.arch!r}")
        unknown = [pool for pool in self.head_pools if pool not in POOLS]
        if unknown or not self.head_pools:
            raise ValueError(f"model.head_pools: expected some of {POOLS}, got {list(self.head_pools)}")

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> SequenceEncoderConfig:
        return cls(**strict_fields(cls, cfg, "model"))

    def to_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in dataclasses.asdict(self).items()}

    @property
    def in_channels(self) -> int:
        return len(self.channels)


def global_pool(tokens: torch.Tensor, pools: Sequence[str]) -> torch.Tensor:
    """(B, T, D) -> (B, D * len(pools)): the named poolings over time, concatenated."""
    out = {"max": lambda: tokens.amax(dim=1), "avg": lambda: tokens.mean(dim=1), "last": lambda: tokens[:, -1]}
    return torch.cat([out[pool]() for pool in pools], dim=1)


class ConcatPoolHead(nn.Module):
    """The fastai-style head of the baselines' sources: global poolings concatenated, then per layer [batch norm,
    dropout, linear], with ReLU between layers. Dropout is ``dropout / 2`` before each hidden layer and
    ``dropout`` before the output layer."""

    def __init__(self, features: int, num_classes: int, cfg: SequenceEncoderConfig) -> None:
        super().__init__()
        self.pools = cfg.head_pools
        sizes = [features * len(cfg.head_pools), *cfg.head_hidden, num_classes]
        layers: list[nn.Module] = []
        for i, (width_in, width_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = i == len(sizes) - 2
            if cfg.head_batch_norm:
                layers.append(nn.BatchNorm1d(width_in))
            p = cfg.head_dropout if last else cfg.head_dropout / 2
            if p:
                layers.append(nn.Dropout(p))
            layers.append(nn.Linear(width_in, width_out))
            if not last:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> logits (B, num_classes)."""
        return self.layers(global_pool(tokens, self.pools))


class SequenceEncoder(nn.Module):
    """Base of the baselines: ``forward`` maps (B, leads, samples) to (B, time steps, ``embed_dim``)."""

    config: SequenceEncoderConfig
    embed_dim: int
    num_registers = 0  # no register tokens: ``keep_registers`` is accepted and has nothing to keep

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, D, T'): the network's final feature map."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, keep_registers: bool = False) -> torch.Tensor:
        return self.features(x).transpose(1, 2)

    def source_head(self, num_classes: int) -> nn.Module:
        """The head the network's source trains it with."""
        return ConcatPoolHead(self.embed_dim, num_classes, self.config)


def kaiming_init(module: nn.Module) -> None:
    """He-normal weights of convolutions and linear layers, zero biases, batch norms at 1 and 0 (the init of the
    sources' from-scratch training)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

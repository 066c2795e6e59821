"""The model group's networks by name: a config mapping -> its typed config -> the encoder.

A config with an ``arch`` key is one of the supervised baselines' networks; one without is the ECG ViT (its
configs, ours and the original's, name no architecture), with the tokenisation its ``tokenizer`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ecgjepa.models.config import ModelConfig
from ecgjepa.models.fc_lstm import FCLSTM, FCLSTMConfig
from ecgjepa.models.inception1d import Inception1d, Inception1dConfig
from ecgjepa.models.lead_vit import LeadViT
from ecgjepa.models.sequence import SequenceEncoderConfig, global_pool
from ecgjepa.models.vit import VisionTransformer
from ecgjepa.models.xresnet1d import XResNet1d, XResNet1dConfig

ARCHS: dict[str, tuple[type[SequenceEncoderConfig], type[nn.Module]]] = {
    "inception1d": (Inception1dConfig, Inception1d),
    "xresnet1d": (XResNet1dConfig, XResNet1d),
    "fc_lstm": (FCLSTMConfig, FCLSTM),
}

EncoderConfig = ModelConfig | SequenceEncoderConfig


def encoder_config(cfg: Mapping[str, Any]) -> EncoderConfig:
    """The typed config of a ``model`` mapping; an unknown architecture or key fails naming it."""
    arch = cfg.get("arch")
    if arch is None:
        return ModelConfig.from_dict(cfg)
    if arch not in ARCHS:
        raise ValueError(f"model.arch: expected one of {sorted(ARCHS)} (or none, for the ViT), got {arch!r}")
    return ARCHS[arch][0].from_dict(cfg)


def build_encoder(config: EncoderConfig) -> nn.Module:
    """A freshly initialised encoder for ``config``."""
    if isinstance(config, ModelConfig):
        return VisionTransformer(config) if config.tokenizer == "patches" else LeadViT(config)
    return ARCHS[config.arch][1](config)


def pooled(config: EncoderConfig, tokens: torch.Tensor) -> torch.Tensor:
    """One vector per input from an encoder's (B, N, D) outputs: a baseline's source-head pooling (e.g. max and
    mean concatenated for xresnet1d50), the ViT's token mean."""
    if isinstance(config, SequenceEncoderConfig):
        return global_pool(tokens, config.head_pools)
    return tokens.mean(dim=1)


def pooled_dim(config: EncoderConfig, encoder: nn.Module) -> int:
    """The width of :func:`pooled`."""
    if isinstance(config, SequenceEncoderConfig):
        return encoder.embed_dim * len(config.head_pools)
    return config.dim

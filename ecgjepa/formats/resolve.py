"""``resolve_encoder(spec)``: the one way every command turns what a user names into encoder weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgjepa.formats.layouts import find_checkpoint, load_classifier_state, load_encoder_state, load_into
from ecgjepa.models.backbones import EncoderConfig, build_encoder


@dataclass(frozen=True)
class ResolvedEncoder:
    """An encoder's config and weights, and what the file says besides.

    ``classifier_state`` (encoder under ``encoder.*`` plus the head) and ``num_classes`` are set for an
    evaluation checkpoint, whose encoder is also in ``state``; ``pretraining_data`` is the data block a
    Lightning pre-training checkpoint records (sources, sampling rate); ``method`` the pre-training method.
    """

    config: EncoderConfig
    state: dict[str, torch.Tensor]
    source: Path
    layout: str
    step: int | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    original_sources: list[str] = field(default_factory=list)
    pretraining_data: dict[str, Any] = field(default_factory=dict)
    classifier_state: dict[str, torch.Tensor] | None = None
    num_classes: int | None = None
    method: str = "jepa"

    def build(self) -> nn.Module:
        """The encoder (:func:`~ecgjepa.models.backbones.build_encoder`: a ViT by its tokeniser, or a baseline
        network by its ``arch``) holding these weights, in eval mode."""
        encoder = build_encoder(self.config)
        load_into(encoder, self.state, str(self.source))
        return encoder.eval()


def resolve_encoder(spec: str | Path) -> ResolvedEncoder:
    """A pre-training run directory or checkpoint (its EMA target encoder), an encoder export folder (or its
    ``model.safetensors``), an original ECG-JEPA checkpoint (full or minified), or an evaluation run directory
    or checkpoint (ours or the original's)."""
    path = find_checkpoint(spec)
    classifier = load_classifier_state(path)
    if classifier is not None:
        config, state, extras = classifier
        encoder = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        return ResolvedEncoder(
            config,
            encoder,
            path,
            extras["layout"],
            classifier_state=state,
            num_classes=extras["num_classes"],
            method=extras.get("method", "jepa"),
        )
    config, state, extras = load_encoder_state(path)
    return ResolvedEncoder(
        config,
        state,
        path,
        extras["layout"],
        step=extras.get("step"),
        preprocess=dict(extras.get("preprocess") or {}),
        original_sources=list(extras.get("original_sources") or []),
        pretraining_data=dict(extras.get("pretraining_data") or {}),
        method=extras.get("method", "jepa"),
    )

"""JEPA pre-training (ECG-JEPA ``models/JEPA.py`` + the ``pretrain.py`` loop).

The online encoder sees only the context patches; the predictor predicts the target encoder's
tokens at every other patch; the loss is L1. The target encoder is a frozen copy updated by EMA in
:class:`ecgjepa.callbacks.TargetMomentumUpdate`; the weight-decay schedule lives in
:class:`ecgjepa.callbacks.WeightDecaySchedule`; the learning rate follows ``LambdaLR``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgjepa.models import Predictor, VisionTransformer
from ecgjepa.models.layers import gather_tokens
from ecgjepa.modules.pretrain import PretrainModule, collapse_std


class JEPAModule(PretrainModule):
    """Online encoder + predictor, trained to predict a frozen EMA target encoder's tokens (arguments: see
    :class:`PretrainModule`; ``recipe`` holds the EMA callback's momentum ramp and update mode and the checkpoint
    interval, for conversion to the original)."""

    method = "jepa"

    def __init__(
        self,
        model: Mapping[str, Any],
        optim: Mapping[str, Any],
        finite_check_interval: int = 1,
        data: Mapping[str, Any] | None = None,
        accumulate_grad_batches: int = 1,
        recipe: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model, optim, finite_check_interval, data, accumulate_grad_batches, recipe)
        if self.require_vit().tokenizer != "patches":
            raise ValueError(
                f"method=jepa predicts all-lead patch tokens: model.tokenizer must be 'patches', not "
                f"{self.model_config.tokenizer!r}"
            )
        if data is not None and data.get("masks") is False:
            raise ValueError("method=jepa trains on the data stream's block masks: data.masks must be true")
        self.encoder = VisionTransformer(self.model_config)
        self.predictor = Predictor(self.model_config)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)

    def jepa_loss(
        self, x: torch.Tensor, keep_idx: torch.Tensor, pred_idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (L1 loss, target tokens (B, N, D)) for signals x (B, C, T) and masks."""
        with torch.no_grad():
            targets = self.target_encoder(x)
        context = self.encoder(x, keep_idx)
        predictions = self.predictor(context, keep_idx, pred_idx)
        return F.l1_loss(predictions, gather_tokens(targets, pred_idx)), targets

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        x, keep_idx, pred_idx = batch[:3]  # a batch may end with the crops' patients, which JEPA does not use
        loss, targets = self.jepa_loss(x, keep_idx, pred_idx)
        keep_ratio = keep_idx.shape[1] / (keep_idx.shape[1] + pred_idx.shape[1])
        return loss, {"target_std": collapse_std(targets), "keep_ratio": keep_ratio}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.predictor]

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_encoder, self.encoder)]

    def exported_encoder(self) -> nn.Module:
        return self.target_encoder

    def exported_prefix(self) -> str:
        return "target_encoder."

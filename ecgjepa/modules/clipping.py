"""Gradient clipping that also works with fused AdamW under bf16 autocast (the default on CUDA)."""

from __future__ import annotations

import lightning as L
import torch
from torch.optim import Optimizer


class ClipWithoutScaler(L.LightningModule):
    """Clip gradients directly when no gradient scaler is in use.

    Lightning's mixed-precision plugin refuses to clip for any optimizer that unscales its gradients itself,
    fused AdamW among them, because an fp16 ``GradScaler`` would still have to unscale them first. bf16
    autocast has no scaler, so the gradients are already true-scale: they are clipped as in full precision
    (the original clips its fused AdamW's gradients the same way). With a scaler, Lightning's own path runs.
    """

    def configure_gradient_clipping(
        self,
        optimizer: Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        if not gradient_clip_val or getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm in (None, "norm"):
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
        elif gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            raise ValueError(f"gradient_clip_algorithm: expected 'norm' or 'value', got {gradient_clip_algorithm!r}")

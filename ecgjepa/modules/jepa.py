"""JEPA pre-training as a LightningModule (ECG-JEPA ``models/JEPA.py`` + the ``pretrain.py`` loop).

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

from ecgjepa.models import ModelConfig, Predictor, VisionTransformer
from ecgjepa.models.layers import gather_tokens
from ecgjepa.modules.clipping import ClipWithoutScaler
from ecgjepa.optim import OptimConfig, adamw, param_groups


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss is NaN/Inf, before any checkpoint of that state is written."""


class JEPAModule(ClipWithoutScaler):
    """Online encoder + predictor, trained to predict a frozen EMA target encoder's tokens.

    Args:
        model: the ``model`` config group (sizes; see :class:`ModelConfig`).
        optim: the ``optim`` config (see :class:`OptimConfig`).
        finite_check_interval: read the loss-finiteness flag on the host every this many steps (and
            before every checkpoint and at the end of training). 1 stops before the optimiser step of
            the first non-finite loss; larger values avoid a host-device sync per step on GPUs. Either
            way no checkpoint or export of a non-finite state is written.
        data, accumulate_grad_batches, recipe: recorded with the checkpoint (provenance, conversion to the
            original layout); not used for training. ``recipe``: the EMA callback's momentum ramp and update
            mode and the checkpoint interval.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        optim: Mapping[str, Any],
        finite_check_interval: int = 1,
        data: Mapping[str, Any] | None = None,
        accumulate_grad_batches: int = 1,
        recipe: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model_config = ModelConfig.from_dict(model)
        self.optim_config = OptimConfig.from_dict(optim)
        self.encoder = VisionTransformer(self.model_config)
        self.predictor = Predictor(self.model_config)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)
        if not (isinstance(finite_check_interval, int) and finite_check_interval >= 1):
            raise ValueError(f"finite_check_interval: expected an integer >= 1, got {finite_check_interval!r}")
        self.finite_check_interval = finite_check_interval
        # (global step, loss) of the first non-finite loss, kept on the loss's device; step -1 = none yet.
        self._first_nonfinite: tuple[torch.Tensor, torch.Tensor] | None = None

    def jepa_loss(
        self, x: torch.Tensor, keep_idx: torch.Tensor, pred_idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (L1 loss, target tokens (B, N, D)) for signals x (B, C, T) and masks."""
        with torch.no_grad():
            targets = self.target_encoder(x)
        context = self.encoder(x, keep_idx)
        predictions = self.predictor(context, keep_idx, pred_idx)
        return F.l1_loss(predictions, gather_tokens(targets, pred_idx)), targets

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, keep_idx, pred_idx = batch
        loss, targets = self.jepa_loss(x, keep_idx, pred_idx)
        self._record_finiteness(loss.detach())
        if self.finite_check_interval == 1:
            self.raise_if_nonfinite()
        # Collapse diagnostic: spread of the target representation across the batch.
        target_std = targets.detach().float().std(dim=0).mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/target_std", target_std)
        self.log("train/keep_ratio", keep_idx.shape[1] / (keep_idx.shape[1] + pred_idx.shape[1]))
        return loss

    def _record_finiteness(self, loss: torch.Tensor) -> None:
        """Remember the first non-finite loss without reading anything back to the host."""
        if self._first_nonfinite is None:
            self._first_nonfinite = (torch.full((), -1, device=loss.device), torch.zeros((), device=loss.device))
        step, value = self._first_nonfinite
        first = torch.logical_and(step < 0, ~torch.isfinite(loss))
        self._first_nonfinite = (torch.where(first, self.global_step, step), torch.where(first, loss.float(), value))

    def raise_if_nonfinite(self) -> None:
        """Raise :class:`NonFiniteLossError` naming the step if a non-finite loss was seen (one host sync)."""
        if self._first_nonfinite is None:
            return
        step, value = self._first_nonfinite
        if step.item() >= 0:
            raise NonFiniteLossError(
                f"non-finite loss ({value.item()}) at global step {step.item()}; stopping without writing a "
                "checkpoint of this state. The last good checkpoint is kept."
            )

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        if self.finite_check_interval == 1:
            return  # training_step already checked before the optimiser step
        if self.global_step % self.finite_check_interval == 0 or self.global_step >= self.trainer.max_steps:
            self.raise_if_nonfinite()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.raise_if_nonfinite()

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_config
        groups = param_groups([self.encoder, self.predictor], cfg.weight_decay)
        optimizer = adamw(groups, cfg.learning_rate, cfg.opt_betas, cfg.opt_eps, cfg.fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cfg.lr_at(step) / cfg.learning_rate)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

"""EMA update of the JEPA target encoder (ECG-JEPA models/JEPA.py)."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch

from ecgjepa.schedules import linear


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    """target <- m * target + (1 - m) * online, for parameters only (buffers are fixed tables)."""
    t_params = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    torch._foreach_lerp_(t_params, o_params, 1.0 - momentum)


class TargetMomentumUpdate(L.Callback):
    """Update ``pl_module.target_encoder`` from ``pl_module.encoder`` with a linear momentum schedule.

    Args:
        encoder_momentum, final_encoder_momentum: momentum ramp (the paper's: conf/callbacks/pretrain.yaml).
        steps: length of the ramp in schedule steps (the run's optimizer steps).
        update_on: ``"optimizer_step"`` updates once after every optimizer step with
            ``m(global_step)``; ``"forward"`` reproduces the original: an update *before every
            forward* (micro-batch) with the schedule advanced per micro-batch (ViT-B parity).
    """

    def __init__(
        self,
        encoder_momentum: float,
        final_encoder_momentum: float,
        steps: int,
        update_on: Literal["optimizer_step", "forward"],
    ) -> None:
        if update_on not in ("optimizer_step", "forward"):
            raise ValueError(f"update_on must be 'optimizer_step' or 'forward', got {update_on!r}")
        self.start = encoder_momentum
        self.final = final_encoder_momentum
        self.steps = steps
        self.update_on = update_on
        self._last_step = -1

    def momentum(self, step: int) -> float:
        return linear(step, self.start, self.final, self.steps)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.update_on != "forward":
            return
        accumulate = trainer.accumulate_grad_batches
        k = trainer.global_step * accumulate + batch_idx % accumulate
        m = self.momentum(k)
        ema_update(pl_module.target_encoder, pl_module.encoder, m)
        pl_module.log("train/momentum", m)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.update_on != "optimizer_step" or trainer.global_step == self._last_step:
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        self._last_step = trainer.global_step
        m = self.momentum(trainer.global_step - 1)
        ema_update(pl_module.target_encoder, pl_module.encoder, m)
        pl_module.log("train/momentum", m)

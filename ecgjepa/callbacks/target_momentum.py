"""EMA update of a method's target networks: JEPA's target encoder (ECG-JEPA models/JEPA.py), BYOL's and MoCo v3's
momentum encoder and projector."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch

from ecgjepa.schedules import cosine_ramp, linear

SCHEDULES = {"linear": linear, "cosine": cosine_ramp}


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    """target <- m * target + (1 - m) * online, for parameters only: buffers are JEPA's fixed position tables, or the
    batch-norm running statistics of a BYOL or MoCo v3 target, which its own forward passes keep."""
    t_params = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    torch._foreach_lerp_(t_params, o_params, 1.0 - momentum)


def update_targets(pl_module: L.LightningModule, momentum: float) -> None:
    """EMA-update every (target, online) pair the method names in ``momentum_pairs()``."""
    for target, online in pl_module.momentum_pairs():
        ema_update(target, online, momentum)


class TargetMomentumUpdate(L.Callback):
    """Update a method's target networks (``pl_module.momentum_pairs()``) from its online ones.

    Args:
        encoder_momentum, final_encoder_momentum: momentum ramp (the paper's: conf/callbacks/pretrain.yaml).
        steps: length of the ramp in schedule steps (the run's optimizer steps).
        schedule: ``linear`` (ECG-JEPA) or ``cosine`` (BYOL, MoCo v3).
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
        schedule: Literal["linear", "cosine"],
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
        self.schedule = SCHEDULES[schedule]
        if update_on not in ("optimizer_step", "forward"):
            raise ValueError(f"update_on must be 'optimizer_step' or 'forward', got {update_on!r}")
        self.start = encoder_momentum
        self.final = final_encoder_momentum
        self.steps = steps
        self.update_on = update_on
        self._last_step = -1

    def momentum(self, step: int) -> float:
        return self.schedule(step, self.start, self.final, self.steps)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.update_on != "forward":
            return
        accumulate = trainer.accumulate_grad_batches
        k = trainer.global_step * accumulate + batch_idx % accumulate
        m = self.momentum(k)
        update_targets(pl_module, m)
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
        update_targets(pl_module, m)
        pl_module.log("train/momentum", m)

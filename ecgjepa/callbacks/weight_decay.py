"""Cosine weight-decay schedule for the decayed parameter group (ECG-JEPA utils/schedules.py)."""

from __future__ import annotations

from typing import Any

import lightning as L

from ecgjepa.schedules import warmup_cosine


class WeightDecaySchedule(L.Callback):
    """Set ``weight_decay`` of every optimizer group flagged ``use_weight_decay`` before each step.

    The value is a pure function of ``trainer.global_step``, so resuming needs no extra state.
    """

    def __init__(self, weight_decay: float, final_weight_decay: float, steps: int) -> None:
        self.start = weight_decay
        self.final = final_weight_decay
        self.steps = steps

    def value(self, step: int) -> float:
        return warmup_cosine(step, self.start, self.start, self.final, 0, self.steps)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx % trainer.accumulate_grad_batches:
            return
        wd = self.value(trainer.global_step)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if group.get("use_weight_decay", False):
                    group["weight_decay"] = wd
        pl_module.log("train/weight_decay", wd)

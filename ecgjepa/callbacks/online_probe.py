"""A cheap linear probe on the frozen features of the method's exported encoder (JEPA's target encoder) during
pre-training (the original has no validation at all): representation quality becomes visible as
``probe/val_auroc`` in the logs."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from ecgjepa.data.labelled import LabelledDataModule
from ecgjepa.metrics import macro_auroc

log = logging.getLogger(__name__)


def fit_logistic_regression(
    features: torch.Tensor, targets: torch.Tensor, multiclass: bool, l2: float = 1e-3, iters: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-regularised logistic (or softmax) regression with L-BFGS; returns (weight (D, C), bias (C,))."""
    weight = torch.zeros(features.shape[1], targets.shape[1], requires_grad=True)
    bias = torch.zeros(targets.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = features @ weight + bias
        if multiclass:
            loss = F.cross_entropy(logits, targets.argmax(dim=1))
        else:
            loss = F.binary_cross_entropy_with_logits(logits, targets)
        loss = loss + l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


class OnlineProbe(L.Callback):
    """Every ``every_n_steps`` (and before the first step), embed PTB-XL records with the exported encoder (mean
    of the tokens of the record's first ``model.channel_size`` samples, at the model's rate and conditioning), fit
    a logistic regression on the training folds and log the validation-fold macro AUROC as ``probe/val_auroc``
    (rank 0 only).

    Args:
        dataset: the labelled dataset (a PTB-XL task, whole records: no crops); its batch size is the probe's.
        every_n_steps: probing interval in optimizer steps.
        max_train_records, max_val_records: caps that keep the probe cheap on large dumps.
    """

    def __init__(
        self, dataset: LabelledDataModule, every_n_steps: int, max_train_records: int, max_val_records: int
    ) -> None:
        self.data = dataset
        self.every_n_steps = every_n_steps
        self.limits = {"train": max_train_records, "val": max_val_records, "test": max_val_records}
        self._last_step = -1
        self._input_length: int | None = None

    @torch.no_grad()
    def features(self, encoder: torch.nn.Module, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = self.data.datasets[split]
        count = min(len(dataset), self.limits[split])
        rows = np.linspace(0, len(dataset) - 1, count).astype(int)  # deterministic subset
        feats, targets = [], []
        for start in range(0, count, self.data.batch_size):
            items = [dataset[int(i)] for i in rows[start : start + self.data.batch_size]]
            x = torch.stack([item[0] for item in items]).to(device)
            feats.append(encoder(x[..., : self._input_length]).mean(dim=1).float().cpu())
            targets.append(torch.stack([item[1] for item in items]))
        return torch.cat(feats), torch.cat(targets)

    def evaluate(self, encoder: torch.nn.Module, device: torch.device, split: str = "val") -> float:
        """Fit the probe on the training folds' features of ``encoder``; macro AUROC on ``split``."""
        self.data.setup()
        was_training = encoder.training
        encoder.eval()
        with torch.autocast(device_type=device.type, enabled=False):
            x_train, y_train = self.features(encoder, "train", device)
            x_eval, y_eval = self.features(encoder, split, device)
        encoder.train(was_training)
        mean, std = x_train.mean(dim=0), x_train.std(dim=0) + 1e-6
        with torch.enable_grad():
            weight, bias = fit_logistic_regression((x_train - mean) / std, y_train, self.data.task_kind.single_label)
        logits = ((x_eval - mean) / std) @ weight + bias
        probs = self.data.task_kind.outputs(logits)
        return macro_auroc(y_eval.numpy(), probs.numpy())

    def probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        auroc = self.evaluate(pl_module.exported_encoder(), pl_module.device)
        log.info("online probe at step %d: val macro AUROC %.4f", trainer.global_step, auroc)
        for logger in trainer.loggers:
            logger.log_metrics({"probe/val_auroc": auroc}, step=trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model_config
        self.data.set_model_input(model.sampling_frequency, model.band_pass, model.standardise)
        self._input_length = model.channel_size
        self.probe(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.probe(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.probe(trainer, pl_module)

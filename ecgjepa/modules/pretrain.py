"""What every pre-training method shares: the optimiser and its schedules, logging, the loss-finiteness guard and
the encoder that is exported and probed. A method subclasses :class:`PretrainModule`, builds its networks in
``__init__`` and implements :meth:`PretrainModule.method_loss` (learned from solo-learn's ``BaseMethod`` and
lightly's modules, kept smaller).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ecgjepa.models import ModelConfig
from ecgjepa.models.backbones import encoder_config
from ecgjepa.modules.clipping import ClipWithoutScaler
from ecgjepa.optim import OptimConfig, adamw, param_groups


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss is NaN/Inf, before any checkpoint of that state is written."""


class PretrainModule(ClipWithoutScaler):
    """The shared base of the pre-training methods.

    Args:
        model: the ``model`` config group with the data module's input shape: a ViT's (:class:`ModelConfig`) or a
            baseline network's (by its ``arch``).
        optim: the ``optim`` config (see :class:`OptimConfig`).
        finite_check_interval: read the loss-finiteness flag on the host every this many steps (and
            before every checkpoint and at the end of training). 1 stops before the optimiser step of
            the first non-finite loss; larger values avoid a host-device sync per step on GPUs. Either
            way no checkpoint or export of a non-finite state is written.
        data, accumulate_grad_batches, recipe: recorded with the checkpoint (provenance, conversion to the
            original layout); not used for training.

    A subclass sets :attr:`method` (its name in ``conf/method/``), builds its networks after calling this
    ``__init__``, and implements :meth:`method_loss` and :meth:`trained_modules`; :meth:`exported_encoder` is the
    encoder evaluated, probed and exported (the online encoder unless the method keeps a target).
    """

    method: ClassVar[str] = ""

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
        self.model_config = encoder_config(model)
        self.optim_config = OptimConfig.from_dict(optim)
        if not (isinstance(finite_check_interval, int) and finite_check_interval >= 1):
            raise ValueError(f"finite_check_interval: expected an integer >= 1, got {finite_check_interval!r}")
        self.finite_check_interval = finite_check_interval
        # (global step, loss) of the first non-finite loss, kept on the loss's device; step -1 = none yet.
        self._first_nonfinite: tuple[torch.Tensor, torch.Tensor] | None = None

    def require_vit(self) -> ModelConfig:
        """The ViT config of a method that trains only the ViT; another network is refused, naming it."""
        if not isinstance(self.model_config, ModelConfig):
            raise ValueError(
                f"method={self.method} trains a ViT (model=vit_*), not model={self.model_config.name}; the methods of "
                f"that network's source are in conf/method/ (e.g. simclr, byol, cpc), and ecgjepa-eval "
                f"encoder={self.model_config.name} protocol=supervised trains it from random initialisation"
            )
        return self.model_config

    def refuse_block_masks(self, draws: str) -> None:
        """A method that ``draws`` its own randomness refuses a data stream that also carries JEPA's block masks."""
        data = self.hparams.get("data")
        if data is not None and data.get("masks") is not False:
            raise ValueError(f"method={self.method} {draws}: data.masks must be false")

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        """(loss, diagnostics logged under ``train/``) of one micro-batch (``batch_idx``: its index in the epoch)."""
        raise NotImplementedError

    def trained_modules(self) -> list[nn.Module]:
        """The networks the optimiser updates, in parameter-group order."""
        raise NotImplementedError

    def exported_encoder(self) -> nn.Module:
        """The encoder that is evaluated, probed during training and exported."""
        return self.encoder

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) networks that :class:`~ecgjepa.callbacks.TargetMomentumUpdate` moves by EMA."""
        raise NotImplementedError(f"method={self.method} keeps no EMA target: set callbacks.target_momentum=null")

    def exported_prefix(self) -> str:
        """The state-dict prefix of :meth:`exported_encoder` (checkpoint readers strip it)."""
        return "encoder."

    def step_generator(self, seed: int, batch_idx: int) -> torch.Generator:
        """The generator of this micro-batch's random draws (masks, augmentations): seeded by (seed, rank, optimiser
        step, micro-batch), so a resumed run draws what an uninterrupted one draws."""
        micro = batch_idx % self.trainer.accumulate_grad_batches if self._trainer is not None else 0
        rank = self.global_rank if self._trainer is not None else 0
        state = np.random.SeedSequence([seed, rank, self.global_step, micro]).generate_state(2, dtype=np.uint64)
        return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss, diagnostics = self.method_loss(batch, batch_idx)
        self._record_finiteness(loss.detach())
        if self.finite_check_interval == 1:
            self.raise_if_nonfinite()
        self.log("train/loss", loss, prog_bar=True)
        for name, value in diagnostics.items():
            self.log(f"train/{name}", value)
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
        checkpoint["method"] = self.method

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_config
        groups = param_groups(self.trained_modules(), cfg.weight_decay)
        optimizer = adamw(groups, cfg.learning_rate, cfg.opt_betas, cfg.opt_eps, cfg.fused, cfg.optimizer)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cfg.lr_at(step) / cfg.learning_rate)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def collapse_std(tokens: torch.Tensor) -> torch.Tensor:
    """Spread of a representation across the batch (mean over features of the per-feature std): near 0 when
    the encoder collapses to one output."""
    return tokens.detach().float().std(dim=0).mean()

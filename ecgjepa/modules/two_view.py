"""What the methods that compare two augmented views of each input share (SimCLR, BYOL, MoCo v3): the augmentation
pipeline, seeded per step like the masks, the encoder of any backbone and its pooled representation, and the
momentum copies of the methods that keep an EMA target."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ecgjepa.data.augment import build_augmentation
from ecgjepa.models.backbones import build_encoder, pooled, pooled_dim
from ecgjepa.modules.pretrain import PretrainModule


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy that the optimiser never touches (the EMA callback moves it)."""
    return copy.deepcopy(module).requires_grad_(False)


class TwoViewModule(PretrainModule):
    """Base of the two-view methods.

    Args:
        augmentations: the transforms of each view, in order (``[{kind, ...}]``, see :mod:`ecgjepa.data.augment`);
            both views of a step draw from one generator seeded by (seed, rank, step, micro-batch).
        seed: base seed of the augmentations.
        common: the arguments every method takes (``model``, ``optim``, ...: see :class:`PretrainModule`).
    """

    def __init__(
        self,
        augmentations: Sequence[Mapping[str, Any]],
        seed: int,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.refuse_block_masks("draws its own views")
        self.seed = seed
        self.augment = build_augmentation(augmentations)
        self.encoder = build_encoder(self.model_config)
        self.feature_dim = pooled_dim(self.model_config, self.encoder)

    def views(self, x: torch.Tensor, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views of signals x (B, C, T), drawn from this micro-batch's generator."""
        generator = self.step_generator(self.seed, batch_idx)
        return self.augment(x, generator), self.augment(x, generator)

    def represent(self, x: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
        """(B, F): the pooled outputs of ``encoder`` (the online encoder by default)."""
        return pooled(self.model_config, (encoder or self.encoder)(x))

"""CMSC, contrastive multi-segment coding (Kiyasseh, Zhu & Clifton, CLOCS, ICML 2021), a contrastive baseline of
the ST-MEM paper on its ViT-B.

Each input crop is cut into two temporally adjacent, non-overlapping segments; the encoder embeds each (pooled
outputs, then a linear projection), and segments of the same patient are positives against every other pairing of
the global batch (:func:`~ecgjepa.modules.losses.cmsc_loss`), as CLOCS counts them. The patients come with the batch
(``data.patient_groups``: the dump's patient ids, else each record's own group); a batch without them makes each crop
its own group.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecgjepa.models.backbones import build_encoder, pooled, pooled_dim
from ecgjepa.modules.losses import cmsc_loss, same_group, world
from ecgjepa.modules.pretrain import PretrainModule, collapse_std


class CMSCModule(PretrainModule):
    """Encoder + linear projection trained to match adjacent segments of one recording.

    Args:
        embedding_dim: width of the projection the loss compares.
        temperature: the softmax temperature of the similarities.
        common: the arguments every method takes (``model``, ``optim``, ...: see :class:`PretrainModule`).
            The data module's crop is two segments long; the encoder, built for the whole crop, sees one segment at
            a time and takes the whole crop at evaluation.
    """

    method = "cmsc"

    def __init__(
        self,
        embedding_dim: int,
        temperature: float,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.refuse_block_masks("cuts its own segments")
        self.encoder = build_encoder(self.model_config)
        self.projection = nn.Linear(pooled_dim(self.model_config, self.encoder), embedding_dim)
        self.temperature = temperature

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(pooled(self.model_config, self.encoder(x)))

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        x = batch[0]
        rank, _ = world()
        groups = batch[1] if len(batch) > 1 else torch.arange(x.shape[0], device=x.device) + rank * x.shape[0]
        first, second = x.chunk(2, dim=-1)
        z1, z2 = self.embed(first), self.embed(second)
        return cmsc_loss(z1, z2, same_group(groups), self.temperature), {"encoder_std": collapse_std(z1)}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.projection]

"""MoCo v3 (Chen, Xie & He, 2021), the contrastive baseline of the ST-MEM paper on its ViT-B.

The online network (encoder, 3-layer projector, 2-layer predictor, batch norm in every layer) maps one view to a
query; a momentum copy of the encoder and projector maps the other view to a key; each query must pick its own key
among the keys of the global batch (:func:`~ecgjepa.modules.losses.info_nce`, temperature 0.2), in both directions.
The momentum follows a half cosine from 0.99 to 1 (:class:`~ecgjepa.callbacks.TargetMomentumUpdate`). As MoCo v3
does for ViTs, the patch projection can stay at its random initialisation (``freeze_patch_embed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ecgjepa.models.projection import projection_mlp
from ecgjepa.modules.losses import info_nce
from ecgjepa.modules.pretrain import collapse_std
from ecgjepa.modules.two_view import TwoViewModule, frozen_copy


class MoCoV3Module(TwoViewModule):
    """Online encoder, projector and predictor; momentum encoder and projector.

    Args:
        projector: ``{hidden_dim, output_dim, layers}`` of the projection MLP.
        predictor: ``{hidden_dim}`` of the 2-layer prediction MLP (its output is the projection's width).
        temperature: the InfoNCE temperature.
        freeze_patch_embed: keep the ViT's patch projection at its random initialisation.
        augmentations, seed, common: see :class:`~ecgjepa.modules.two_view.TwoViewModule` (``common``: the
            arguments every method takes, :class:`~ecgjepa.modules.pretrain.PretrainModule`'s).
    """

    method = "moco_v3"

    def __init__(
        self,
        projector: Mapping[str, int],
        predictor: Mapping[str, int],
        temperature: float,
        freeze_patch_embed: bool,
        augmentations: Sequence[Mapping[str, Any]],
        seed: int,
        **common: Any,
    ) -> None:
        super().__init__(augmentations, seed, **common)
        hidden, out = projector["hidden_dim"], projector["output_dim"]
        widths = (self.feature_dim, *[hidden] * (projector["layers"] - 1), out)
        self.projector = projection_mlp(widths, batch_norm=True, last_batch_norm=True)
        self.predictor = projection_mlp((out, predictor["hidden_dim"], out), batch_norm=True, last_batch_norm=True)
        self.temperature = temperature
        if freeze_patch_embed:
            self.require_vit()
            self.encoder.patch_embed.requires_grad_(False)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_projector = frozen_copy(self.projector)

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        first, second = self.views(batch[0], batch_idx)
        h1, h2 = self.represent(first), self.represent(second)
        q1, q2 = self.predictor(self.projector(h1)), self.predictor(self.projector(h2))
        with torch.no_grad():
            k1 = self.target_projector(self.represent(first, self.target_encoder))
            k2 = self.target_projector(self.represent(second, self.target_encoder))
        loss = info_nce(q1, k2, self.temperature) + info_nce(q2, k1, self.temperature)
        return loss, {"encoder_std": collapse_std(h1)}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.projector, self.predictor]

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_encoder, self.encoder), (self.target_projector, self.projector)]

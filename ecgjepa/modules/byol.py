"""BYOL (Grill et al., 2020) as hhi-aml/ecg-selfsupervised trains it for ECGs (``custom_byol_bolts.py``).

The online network (encoder, projector, predictor) predicts the projection of the other view by a target network
(encoder and projector) that follows the online one by EMA (:class:`~ecgjepa.callbacks.TargetMomentumUpdate`, cosine
from 0.996 to 1). The loss is the source's -2 cos(prediction, target projection), summed over both directions.
Both heads are Linear without bias, batch norm, ReLU, Linear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ecgjepa.models.projection import projection_mlp
from ecgjepa.modules.losses import negative_cosine
from ecgjepa.modules.pretrain import collapse_std
from ecgjepa.modules.two_view import TwoViewModule, frozen_copy


class BYOLModule(TwoViewModule):
    """Online encoder, projector and predictor; EMA target encoder and projector.

    Args:
        projector: ``{hidden_dim, output_dim}`` of the projection MLP.
        predictor: ``{hidden_dim}`` of the prediction MLP (its output is the projection's width).
        augmentations, seed, common: see :class:`~ecgjepa.modules.two_view.TwoViewModule` (``common``: the
            arguments every method takes, :class:`~ecgjepa.modules.pretrain.PretrainModule`'s).
    """

    method = "byol"

    def __init__(
        self,
        projector: Mapping[str, int],
        predictor: Mapping[str, int],
        augmentations: Sequence[Mapping[str, Any]],
        seed: int,
        **common: Any,
    ) -> None:
        super().__init__(augmentations, seed, **common)
        out = projector["output_dim"]
        self.projector = projection_mlp((self.feature_dim, projector["hidden_dim"], out), batch_norm=True)
        self.predictor = projection_mlp((out, predictor["hidden_dim"], out), batch_norm=True)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_projector = frozen_copy(self.projector)

    def target_projection(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target_projector(self.represent(x, self.target_encoder))

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        first, second = self.views(batch[0], batch_idx)
        h1, h2 = self.represent(first), self.represent(second)
        p1, p2 = self.predictor(self.projector(h1)), self.predictor(self.projector(h2))
        z1, z2 = self.target_projection(first), self.target_projection(second)
        loss = 2 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))
        return loss, {"encoder_std": collapse_std(h1)}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.projector, self.predictor]

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_encoder, self.encoder), (self.target_projector, self.projector)]

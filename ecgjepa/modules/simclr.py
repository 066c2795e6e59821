"""SimCLR (Chen et al., 2020) as hhi-aml/ecg-selfsupervised trains it for ECGs (``custom_simclr_bolts.py``).

Two augmented views of each crop pass the encoder and a projector (Linear, ReLU, Linear); the NT-Xent loss makes
each view pick out its partner among the other views of the step; the views of every process are gathered
(:func:`~ecgjepa.modules.losses.gather`), so negatives span the global batch. The source's loss subtracts e^1
rather than the self-similarity e^(1/T) from each row's denominator; this module uses the standard NT-Xent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ecgjepa.models.projection import projection_mlp
from ecgjepa.modules.losses import nt_xent
from ecgjepa.modules.pretrain import collapse_std
from ecgjepa.modules.two_view import TwoViewModule


class SimCLRModule(TwoViewModule):
    """Encoder + projector trained with NT-Xent.

    Args:
        projector: ``{hidden_dim, output_dim}`` of the projection MLP (no batch norm, as the source's).
        temperature: the NT-Xent temperature.
        augmentations, seed, common: see :class:`~ecgjepa.modules.two_view.TwoViewModule` (``common``: the
            arguments every method takes, :class:`~ecgjepa.modules.pretrain.PretrainModule`'s).
    """

    method = "simclr"

    def __init__(
        self,
        projector: Mapping[str, int],
        temperature: float,
        augmentations: Sequence[Mapping[str, Any]],
        seed: int,
        **common: Any,
    ) -> None:
        super().__init__(augmentations, seed, **common)
        widths = (self.feature_dim, projector["hidden_dim"], projector["output_dim"])
        self.projector = projection_mlp(widths, batch_norm=False)
        self.temperature = temperature

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        first, second = self.views(batch[0], batch_idx)
        h1, h2 = self.represent(first), self.represent(second)
        loss = nt_xent(self.projector(h1), self.projector(h2), self.temperature)
        return loss, {"encoder_std": collapse_std(h1)}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.projector]

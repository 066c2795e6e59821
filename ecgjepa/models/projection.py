"""The projection and prediction MLPs of the contrastive methods (SimCLR, BYOL, MoCo v3)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def projection_mlp(widths: Sequence[int], batch_norm: bool, last_batch_norm: bool = False) -> nn.Sequential:
    """Linear layers through ``widths`` (input, hidden..., output) with ReLU between them.

    With ``batch_norm`` every hidden layer is Linear without bias, BatchNorm, ReLU (BYOL's and MoCo v3's heads);
    without, Linear with bias, ReLU (SimCLR's). ``last_batch_norm`` adds a BatchNorm without affine parameters after
    the output layer (MoCo v3's projector and predictor).
    """
    if len(widths) < 2:
        raise ValueError(f"a projection MLP needs an input and an output width, got {list(widths)}")
    layers: list[nn.Module] = []
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    for i, (width_in, width_out) in enumerate(pairs):
        last = i == len(pairs) - 1
        layers.append(nn.Linear(width_in, width_out, bias=last or not batch_norm))
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(width_out))
            layers.append(nn.ReLU())
    if last_batch_norm:
        layers.append(nn.BatchNorm1d(widths[-1], affine=False))
    return nn.Sequential(*layers)

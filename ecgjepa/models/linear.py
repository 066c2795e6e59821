"""Linear layers whose float32 CPU forwards without autograd run on oneDNN.

torch's CPU ``F.linear`` multiplies float32 matrices with MKL's sgemm. On AMD EPYC (Zen 4, AVX-512, the
CI machines) oneDNN's float32 inner product, which torch ships for its CPU inference paths, runs this
model's products 1.05-1.4x faster, and it can apply the exact (erf) GELU to the MLP's ``fc1`` output
while that is still in cache (docs/performance.md). Both compute in IEEE float32: results differ from
MKL's only in summation order (relative 1e-6). The path covers forwards without autograd (the EMA target
encoder, frozen probe encoders, evaluation); everything else, and every other device, dtype, autocast
region, compiled graph or reduced ``float32_matmul_precision``, goes through ``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight.T`` runs on oneDNN here: float32 on the CPU, no autograd, autocast or
    compilation, and full float32 precision asked for."""
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and torch.get_float32_matmul_precision() == "highest"
        and torch.backends.mkldnn.is_available()
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, followed by the exact GELU with ``gelu``."""
    if onednn_applies(x, weight) and (bias is None or not bias.requires_grad or not torch.is_grad_enabled()):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [], "none")
    y = F.linear(x, weight, bias)
    return F.gelu(y) if gelu else y


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) computed by :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

"""Linear layers whose float32 CPU products can run on oneDNN (``cpu_linear_backend``).

torch's CPU ``F.linear`` multiplies float32 matrices with MKL's sgemm. oneDNN's float32 inner product,
which torch ships for its CPU inference paths, is faster than MKL on some CPUs and slower on others
(docs/performance.md), so ``auto`` times both on this machine once per process and takes the faster.
Both compute in IEEE float32: results differ from MKL's only in summation order (relative 1e-6).

- Without autograd (the EMA target encoder, frozen probe encoders, evaluation) one oneDNN call also
  applies the MLP's exact (erf) GELU while ``fc1``'s output is still in cache.
- With autograd the forward product and the input gradient run on oneDNN; the weight gradient is the
  product aten's own backward computes (``(x^T g)^T``).
- Every other device, dtype, autocast region, compiled graph or reduced ``float32_matmul_precision`` goes
  through ``F.linear``.
"""

from __future__ import annotations

import functools
import logging
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

CPU_LINEAR_BACKENDS = ("auto", "onednn", "aten")
log = logging.getLogger(__name__)


@functools.cache
def onednn_is_faster() -> bool:
    """Time ViT-XS's MLP products (1,600 tokens, 192 <-> 768 features) on both kernels, interleaved, and
    whether oneDNN's median is at least 5 % below MKL's (about 0.1 s, once per process)."""
    if not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1600, 192, generator=generator)
    w1, w2 = torch.randn(768, 192, generator=generator), torch.randn(192, 768, generator=generator)
    kernels = {
        "aten": lambda: F.linear(F.linear(x, w1), w2),
        "onednn": lambda: onednn_linear(onednn_linear(x, w1), w2),
    }
    times: dict[str, list[float]] = {name: [] for name in kernels}
    with torch.no_grad():
        for _ in range(7):
            for name, kernel in kernels.items():
                start = time.perf_counter()
                kernel()
                times[name].append(time.perf_counter() - start)
    aten, onednn = (sorted(times[name][1:])[3] for name in ("aten", "onednn"))
    faster = onednn < 0.95 * aten
    log.info(
        "cpu_linear_backend=auto -> %s (float32 products measured: oneDNN %.2f ms, MKL %.2f ms)",
        "onednn" if faster else "aten",
        onednn * 1e3,
        aten * 1e3,
    )
    return faster


def set_cpu_linear_backend(value: str | None) -> None:
    """Apply ``cpu_linear_backend``: 'onednn', 'aten' (``F.linear``: MKL), or 'auto'/None (the kernel measured
    faster on this CPU, see :func:`onednn_is_faster`)."""
    global _use_onednn
    value = "auto" if value is None else value
    if value not in CPU_LINEAR_BACKENDS:
        raise ValueError(f"cpu_linear_backend: expected one of {CPU_LINEAR_BACKENDS} or null, got {value!r}")
    chosen = value == "onednn" or (value == "auto" and onednn_is_faster())
    _use_onednn = chosen and torch.backends.mkldnn.is_available()


_use_onednn = False


def onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight.T`` runs on oneDNN here: the backend chosen (and built into torch), float32 on the
    CPU, outside autocast and compilation, with full float32 precision asked for."""
    return (
        _use_onednn
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and torch.get_float32_matmul_precision() == "highest"
    )


def onednn_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, activation: str = "none"
) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN's inner product, then ``activation`` ('none' or 'gelu', the erf one)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], "none")


class _OneDNNLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` with the forward and the input gradient on oneDNN."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return onednn_linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:  # noqa: ANN001
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple:  # noqa: ANN001
        x, weight = ctx.saved_tensors
        grad_x = onednn_linear(grad, weight.t(), None) if ctx.needs_input_grad[0] else None
        grad_2d = grad.reshape(-1, grad.shape[-1])
        grad_w = x.reshape(-1, x.shape[-1]).t().mm(grad_2d).t() if ctx.needs_input_grad[1] else None
        grad_b = grad_2d.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, followed by the exact GELU with ``gelu``."""
    if not onednn_applies(x, weight):
        y = F.linear(x, weight, bias)
    elif torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        y = _OneDNNLinear.apply(x, weight, bias)
    else:
        return onednn_linear(x, weight, bias, "gelu" if gelu else "none")
    return F.gelu(y) if gelu else y


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) computed by :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

"""oneDNN linear layers: same results as F.linear, taken only where they apply, and the backend switch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from ecgjepa.models import ModelConfig, VisionTransformer
from ecgjepa.models import linear as linear_module
from ecgjepa.models.layers import MLP
from ecgjepa.models.linear import Linear, linear, set_cpu_linear_backend

ONEDNN = torch.ops.mkldnn._linear_pointwise.default
pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


@pytest.fixture(autouse=True)
def onednn_backend():
    """These tests exercise the oneDNN path whatever CPU runs them (``auto`` takes it on AMD CPUs only)."""
    set_cpu_linear_backend("onednn")
    yield
    set_cpu_linear_backend("auto")


class OpsSeen(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[object] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def ops_of(fn) -> list[object]:
    with OpsSeen() as seen:
        fn()
    return seen.ops


@pytest.mark.parametrize("bias", [False, True])
def test_onednn_matches_f_linear_and_the_exact_gelu(bias: bool) -> None:
    torch.manual_seed(0)
    layer = Linear(192, 768, bias=bias)
    x = torch.randn(3, 201, 192)
    with torch.no_grad():
        assert ops_of(lambda: layer(x)) == [ONEDNN]
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-6)
        fused = linear(x, layer.weight, layer.bias, gelu=True)
        torch.testing.assert_close(fused, F.gelu(F.linear(x, layer.weight, layer.bias)), rtol=1e-5, atol=1e-6)
        tanh = F.gelu(F.linear(x, layer.weight, layer.bias), approximate="tanh")
        assert (fused - tanh).abs().max() > 1e-5  # the erf GELU, not its tanh approximation
    transposed = torch.randn(192, 10).t()  # a non-contiguous input
    with torch.inference_mode():
        torch.testing.assert_close(layer(transposed), F.linear(transposed, layer.weight, layer.bias))


@pytest.mark.parametrize("bias", [False, True])
def test_autograd_gives_f_linear_gradients_with_the_input_gradient_on_onednn(bias: bool) -> None:
    torch.manual_seed(0)
    layer = Linear(96, 384, bias=bias)
    x = torch.randn(2, 201, 96, requires_grad=True)
    grad_out = torch.randn(2, 201, 384)
    with OpsSeen() as seen:
        layer(x).backward(grad_out)
    assert seen.ops.count(ONEDNN) == 2  # forward, input gradient
    assert torch.ops.aten.mm.default in seen.ops  # weight gradient
    grads = [t.grad.clone() for t in (x, layer.weight, layer.bias) if t is not None]
    for t in (x, layer.weight, layer.bias):
        if t is not None:
            t.grad = None
    F.linear(x, layer.weight, layer.bias).backward(grad_out)
    for ours, expected in zip(grads, [t.grad for t in (x, layer.weight, layer.bias) if t is not None], strict=True):
        assert ours.shape == expected.shape
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    frozen_input = torch.randn(4, 96)  # only the weight needs a gradient
    layer(frozen_input).sum().backward()
    assert layer.weight.grad is not None


def test_autocast_reduced_precision_and_other_dtypes_take_f_linear() -> None:
    layer = Linear(16, 8)
    x = torch.randn(4, 16)
    with torch.no_grad():
        assert ops_of(lambda: layer(x)) == [ONEDNN]
        assert ONEDNN not in ops_of(lambda: layer.double()(x.double()))
        assert ONEDNN not in ops_of(lambda: layer.bfloat16()(x.bfloat16()))
        layer.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert ONEDNN not in ops_of(lambda: layer(x))
            assert layer(x).dtype == torch.bfloat16
        previous = torch.get_float32_matmul_precision()
        try:
            torch.set_float32_matmul_precision("medium")  # the user allowed bf16 passes: aten decides
            assert ONEDNN not in ops_of(lambda: layer(x))
        finally:
            torch.set_float32_matmul_precision(previous)


def test_mlp_keeps_its_dropout_around_the_fused_gelu() -> None:
    torch.manual_seed(0)
    mlp = MLP(32, 128, dropout=0.5).eval()
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        expected = F.linear(F.gelu(F.linear(x, mlp.fc1.weight)), mlp.fc2.weight)
        torch.testing.assert_close(mlp(x), expected, rtol=1e-5, atol=1e-6)
        mlp.train()
        torch.manual_seed(1)
        dropped = mlp(x)
    assert not torch.allclose(dropped, expected)  # dropout still applies in training mode


def test_encoder_forward_without_autograd_matches_the_autograd_one() -> None:
    torch.manual_seed(0)
    encoder = VisionTransformer(ModelConfig(32, 2, 2, 16, 2, 2), 0).eval()
    x = torch.randn(3, 12, 5000)
    with_autograd = encoder(x)  # GELU apart from fc1
    with torch.no_grad():
        assert ONEDNN in ops_of(lambda: encoder(x))
        torch.testing.assert_close(encoder(x), with_autograd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("backend", "measured_faster", "onednn"),
    [
        ("auto", True, True),
        ("auto", False, False),
        (None, True, True),
        ("onednn", False, True),
        ("aten", True, False),
    ],
)
def test_backend_switch(backend: str | None, measured_faster: bool, onednn: bool, monkeypatch) -> None:
    monkeypatch.setattr(linear_module, "onednn_is_faster", lambda: measured_faster)
    set_cpu_linear_backend(backend)
    layer = Linear(16, 8).requires_grad_(False)
    assert (ONEDNN in ops_of(lambda: layer(torch.randn(2, 16)))) == onednn


def test_auto_measures_both_kernels_once(caplog: pytest.LogCaptureFixture) -> None:
    linear_module.onednn_is_faster.cache_clear()
    with caplog.at_level("INFO"):
        first = linear_module.onednn_is_faster()
        assert linear_module.onednn_is_faster() == first
    assert caplog.text.count("cpu_linear_backend=auto -> ") == 1
    assert "float32 products measured: oneDNN" in caplog.text


def test_bad_backend_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"cpu_linear_backend: expected one of \('auto', 'onednn', 'aten'\) or null, got 'mkl'"
    ):
        set_cpu_linear_backend("mkl")

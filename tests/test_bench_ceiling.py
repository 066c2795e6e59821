"""The floor tool of bench/ceiling.py: what it records of a step and how it replays a kernel."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from ceiling import StepTimer, TensorSpec, stand_alone_s  # noqa: E402


def test_timer_counts_kernels_their_flops_and_the_other_ops() -> None:
    a, b = torch.randn(64, 32), torch.randn(32, 16, requires_grad=True)
    q = k = v = torch.randn(2, 3, 10, 8)
    timer = StepTimer()
    with timer:
        (a @ b).sum().backward()
        torch.nn.functional.gelu(a @ b.detach())
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
    kinds = sorted(kind for kind, *_ in timer.kernel_calls.values())
    assert kinds == ["attention", "matmul", "matmul"]  # forward a@b twice (one layout, counted 2), grad of b
    mm_counts = sorted(count for _, func, _, count in timer.kernel_calls.values() if func == torch.ops.aten.mm.default)
    assert mm_counts == [1, 2]
    assert timer.flops["matmul"] == 3 * 2 * 64 * 32 * 16
    assert timer.flops["attention"] == 4 * 2 * 3 * 10 * 10 * 8
    assert timer.in_step_s["other"] > 0  # gelu, sum, ones_like, ...


def test_replay_keeps_transposed_and_broadcast_layouts() -> None:
    generator = torch.Generator().manual_seed(0)
    transposed = TensorSpec((32, 16), (1, 32), torch.float32).make(generator)
    broadcast = TensorSpec((4, 5, 6), (0, 6, 1), torch.bfloat16).make(generator)
    assert transposed.stride() == (1, 32) and transposed.dtype == torch.float32
    assert broadcast.stride() == (0, 6, 1) and broadcast.dtype == torch.bfloat16
    assert torch.equal(broadcast[0], broadcast[3])
    layout = ((TensorSpec((64, 32), (32, 1), torch.float32), TensorSpec((32, 16), (1, 32), torch.float32)), {})
    assert stand_alone_s(torch.ops.aten.mm.default, layout, min_time_s=0.0) > 0

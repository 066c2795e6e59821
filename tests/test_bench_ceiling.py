"""The floor tool of bench/ceiling.py: what it records of a step, how it replays a kernel, what it reports."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from ceiling import StepTimer, TensorSpec, stand_alone_s, table  # noqa: E402

MM = torch.ops.aten.mm.default


def test_timer_counts_kernels_their_flops_and_the_other_ops() -> None:
    a, b = torch.randn(64, 32), torch.randn(32, 16, requires_grad=True)
    q = k = v = torch.randn(2, 3, 10, 8)
    timer = StepTimer()
    with timer:
        (a @ b).sum().backward()
        F.gelu(a @ b.detach())
        F.scaled_dot_product_attention(q, k, v)
    assert sorted(c.kind for c in timer.kernel_calls.values()) == ["attention", "matmul", "matmul"]
    # a @ b twice with one layout, and the gradient of b with another
    assert sorted(c.count for c in timer.kernel_calls.values() if c.func == MM) == [1, 2]
    assert timer.flops["matmul"] == 3 * 2 * 64 * 32 * 16
    assert timer.flops["attention"] == 4 * 2 * 3 * 10 * 10 * 8
    assert timer.in_step_s["other"] > 0  # gelu, sum, ones_like, ...
    in_step = sum(c.in_step_s for c in timer.kernel_calls.values())
    assert in_step == pytest.approx(timer.in_step_s["matmul"] + timer.in_step_s["attention"])


def test_composite_ops_under_inference_mode_are_timed_once_by_their_parts() -> None:
    x, w = torch.randn(4, 50, 32), torch.randn(96, 32)
    q = k = v = torch.randn(4, 2, 50, 16)
    timer = StepTimer()
    with torch.inference_mode(), timer:
        F.layer_norm(F.linear(x, w), (96,))
        F.scaled_dot_product_attention(q, k, v)
    calls = sorted((c.kind, c.count) for c in timer.kernel_calls.values())
    assert calls == [("attention", 1), ("matmul", 1)]  # linear = one mm, SDPA = the flash kernel, once each
    assert timer.flops["matmul"] == 2 * 4 * 50 * 32 * 96
    assert timer.flops["attention"] == 4 * 4 * 2 * 50 * 50 * 16


def test_kernel_floor_takes_the_faster_of_in_step_and_alone() -> None:
    timer = StepTimer()
    with timer:
        torch.randn(256, 256) @ torch.randn(256, 256)
    (calls,) = timer.kernel_calls.values()
    calls.in_step_s = 1e-9  # faster than any replay
    assert timer.kernel_floor_s()["matmul"] == 1e-9
    calls.in_step_s = 100.0  # slower than any replay
    assert 0 < timer.kernel_floor_s()["matmul"] < 1.0


def test_replay_keeps_transposed_broadcast_and_offset_layouts() -> None:
    generator = torch.Generator().manual_seed(0)
    transposed = TensorSpec((32, 16), (1, 32), 0, torch.float32).make(generator)
    broadcast = TensorSpec((4, 5, 6), (0, 6, 1), 0, torch.bfloat16).make(generator)
    offset = TensorSpec((8, 4), (12, 1), 4, torch.float32).make(generator)  # k of a fused qkv, say
    assert transposed.stride() == (1, 32) and transposed.dtype == torch.float32
    assert broadcast.stride() == (0, 6, 1) and broadcast.dtype == torch.bfloat16
    assert torch.equal(broadcast[0], broadcast[3])
    assert offset.storage_offset() == 4 and offset.stride() == (12, 1)
    layout = ((TensorSpec((64, 32), (32, 1), 0, torch.float32), TensorSpec((32, 16), (1, 32), 0, torch.float32)), {})
    assert stand_alone_s(MM, layout, min_time_s=0.0) > 0


def test_table_reports_the_floors_and_the_bounds_over_the_original() -> None:
    row = {
        "work": "eval",
        "model": "vit_xs",
        "batch": 32,
        "step_s": 0.344,
        "original_step_s": 0.415,
        "gflop_per_step": 87.4,
        "kernels": {"matmul": {"in_step_s": 0.25, "floor_s": 0.227, "gflop": 82.6}},
        "other_in_step_s": 0.081,
        "kernel_floor_s": 0.273,
        "matmul_speed_floor_s": 0.241,
        "eager_estimate_s": 0.354,
    }
    text = table([row], peak_gflops=392.0)
    assert "| eval | vit_xs | 32 | 415 | 344 (1.21×) | 81 | 354 | 273 (82 %) | 241 | 1.52× | 1.72× |" in text
    assert "| eval | vit_xs | 32 | matmul | 82.6 | 250 (330) | 227 (364) |" in text
    without_original = table([{k: v for k, v in row.items() if k != "original_step_s"}], peak_gflops=392.0)
    assert "| eval | vit_xs | 32 | – | 344 | 81 | 354 | 273 (82 %) | 241 | – | – |" in without_original

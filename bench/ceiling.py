"""How fast a step could run with the kernels this torch ships: floors under an eager fp32 CPU step.

Runs one of our fp32 bench steps (``timed_steps`` of them, the whole mask pool for pre-training) under a
dispatch mode that times every aten call where it runs, then replays each matrix product, convolution and
attention kernel on its own (same shapes, strides, offset and dtype; random values; warm caches). Each
kernel call counts at the faster of its two times. Three figures follow:

- ``kernel floor``: the kernels and nothing else, as if all other work (GELU, LayerNorm, adds, copies, the
  optimiser's and EMA's element-wise work) were fused away for free. Code that runs the same kernels
  cannot step faster.
- ``matmul-speed floor``: every FLOP of the step (attention and convolution included) at the speed the
  step's own matrix products reach alone. This bounds any rewrite of attention or convolution into matrix
  products too. It does not bound faster matrix products, or fewer FLOPs (another method).
- ``eager estimate``: the kernel floor plus the other ops as long as they took in the step. This is an
  estimate, not a floor: a fresh process can step faster than the timed one.

Step times (ours, and the original's with ``--original``) come from fresh processes, as in ``bench.py``.
The original's step time divided by a floor bounds the speed-up over it that such code can reach. The
floors are measured in this one process, after the others: process history (glibc's mmap threshold) can
slow the in-step times, but the replayed times bound them from below.

    python bench/ceiling.py --works pretrain eval linear --models vit_xs vit_s --batches 32
    python bench/ceiling.py --works pretrain --original ~/src/ECG-JEPA   # adds the original's step time
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch._ops import OpOverload
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry, shape_wrapper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import MODELS, allocator_env, cpu_kernel_flops, make_step, matmul_peak, run_child  # noqa: E402

aten = torch.ops.aten
KERNELS = {
    aten.mm: "matmul",
    aten.addmm: "matmul",
    aten.bmm: "matmul",
    aten.baddbmm: "matmul",
    aten.convolution: "convolution",
    aten.convolution_backward: "convolution",
    aten._scaled_dot_product_flash_attention_for_cpu: "attention",
    aten._scaled_dot_product_flash_attention_for_cpu_backward: "attention",
    torch.ops.mkldnn._linear_pointwise: "matmul",
}
FLOPS = {**flop_registry, **{op: shape_wrapper(f) for op, f in cpu_kernel_flops().items()}}


@dataclass(frozen=True)
class TensorSpec:
    """What a replay needs of a tensor argument: its layout, not its values."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    dtype: torch.dtype

    def make(self, generator: torch.Generator) -> torch.Tensor:
        extent = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True)) if all(self.shape) else 0
        base = torch.randn(self.offset + extent, generator=generator).to(self.dtype)
        return base.as_strided(self.shape, self.stride, self.offset)


def spec_of(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(value.shape), tuple(value.stride()), value.storage_offset(), value.dtype)
    return value


@dataclass
class KernelCalls:
    """The calls of one kernel with one argument layout: how many, and their time in the step."""

    kind: str
    func: OpOverload
    layout: tuple
    count: int = 0
    in_step_s: float = 0.0


class StepTimer(TorchDispatchMode):
    """Times each aten call in place; keeps the kernels' argument layouts for the replay."""

    def __init__(self) -> None:
        super().__init__()
        self.in_step_s: dict[str, float] = defaultdict(float)
        self.flops: dict[str, int] = defaultdict(int)
        self.kernel_calls: dict[str, KernelCalls] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._overloadpacket not in KERNELS:
            # Composite ops (linear, SDPA, layer_norm under inference mode) reach the mode whole: time their parts.
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        start = time.perf_counter()
        out = func(*args, **kwargs)
        elapsed = time.perf_counter() - start
        kind = KERNELS.get(func._overloadpacket, "other")
        self.in_step_s[kind] += elapsed
        if kind != "other":
            self.flops[kind] += FLOPS[func._overloadpacket](*args, **kwargs, out_val=out)
            layout = tree_map(spec_of, (args, kwargs))
            calls = self.kernel_calls.setdefault(f"{func}{layout}", KernelCalls(kind, func, layout))
            calls.count += 1
            calls.in_step_s += elapsed
        return out

    def kernel_floor_s(self) -> dict[str, float]:
        """Per kind of kernel: every call at the faster of its time in the step and its time alone."""
        floor: dict[str, float] = defaultdict(float)
        for calls in self.kernel_calls.values():
            floor[calls.kind] += min(calls.in_step_s, calls.count * stand_alone_s(calls.func, calls.layout))
        return floor


def stand_alone_s(func: OpOverload, layout: tuple, min_time_s: float = 0.05) -> float:
    """Median time of ``func`` alone on random tensors of the recorded layout (warm caches, no autograd)."""
    generator = torch.Generator().manual_seed(0)
    args, kwargs = tree_map(lambda s: s.make(generator) if isinstance(s, TensorSpec) else s, layout)
    with torch.inference_mode():
        func(*args, **kwargs)
        times: list[float] = []
        while len(times) < 5 or (sum(times) < min_time_s and len(times) < 100):
            start = time.perf_counter()
            func(*args, **kwargs)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_times_s(work: str, model: str, batch: int, steps: int, repeats: int, original: str | None) -> dict[str, float]:
    """Median step time of ours (and the original's) in fresh processes, as ``bench.py`` measures them:
    glibc's mmap threshold moves with a process's history, so a step timed after another one is not
    comparable."""
    bench_args = argparse.Namespace(
        steps=steps, warmup=3, data_dir="data/sample", device="cpu", compile=False, original=original
    )
    impls = ["ecgjepa", "original"] if original else ["ecgjepa"]
    runs: dict[str, list[float]] = defaultdict(list)
    for r in range(repeats):
        for impl in impls if r % 2 == 0 else impls[::-1]:
            result = run_child(bench_args, work, model, batch, "fp32", "none", impl, allocator_env("system"))
            runs[impl].append(result["step_s"])
    return {impl: statistics.median(times) for impl, times in runs.items()}


def measure(
    work: str, model: str, batch: int, steps: int, repeats: int, original: str | None, timed_steps: int = 8
) -> dict[str, object]:
    """Step times and the floors of one fp32 step, per step (averaged over ``timed_steps`` steps: the
    pre-training mask pool cycles through 8 context lengths)."""
    times = step_times_s(work, model, batch, steps, repeats, original)
    torch.manual_seed(0)
    step, _ = make_step(work, model, batch, bf16=False)
    for _ in range(3):
        step()
    timer = StepTimer()
    with timer:
        for _ in range(timed_steps):
            step()
    floor = {kind: seconds / timed_steps for kind, seconds in timer.kernel_floor_s().items()}
    gflop = {kind: flops / 1e9 / timed_steps for kind, flops in timer.flops.items()}
    matmul_gflops = gflop["matmul"] / floor["matmul"]
    return {
        "work": work,
        "model": model,
        "batch": batch,
        "step_s": times["ecgjepa"],
        **({"original_step_s": times["original"]} if original else {}),
        "gflop_per_step": sum(gflop.values()),
        "kernels": {
            kind: {"in_step_s": timer.in_step_s[kind] / timed_steps, "floor_s": floor[kind], "gflop": gflop[kind]}
            for kind in sorted(floor)
        },
        "other_in_step_s": timer.in_step_s["other"] / timed_steps,
        "kernel_floor_s": sum(floor.values()),
        "matmul_speed_floor_s": sum(gflop.values()) / matmul_gflops,
        "eager_estimate_s": sum(floor.values()) + timer.in_step_s["other"] / timed_steps,
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f}"


def table(rows: list[dict], peak_gflops: float) -> str:
    """Markdown: one row per step (ms; the kernel floor's % of the fp32 matmul peak), then one per kernel."""
    lines = [
        "| work | model | batch | original ms | ours ms (÷) | other ops ms | eager estimate ms | kernel floor ms "
        "(% peak) | matmul-speed floor ms | original ÷ kernel floor | original ÷ matmul-speed floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        kernel, matmul, ours = row["kernel_floor_s"], row["matmul_speed_floor_s"], row["step_s"]
        original = row.get("original_step_s")
        versus = (
            [
                ms(original),
                f"{ms(ours)} ({original / ours:.2f}×)",
                f"{original / kernel:.2f}×",
                f"{original / matmul:.2f}×",
            ]
            if original
            else ["–", ms(ours), "–", "–"]
        )
        pct = row["gflop_per_step"] / kernel / peak_gflops * 100
        cells = [row["work"], row["model"], str(row["batch"]), *versus[:2], ms(row["other_in_step_s"])]
        cells += [ms(row["eager_estimate_s"]), f"{ms(kernel)} ({pct:.0f} %)", ms(matmul), *versus[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| work | model | batch | kernel | GFLOP | in the step ms (GFLOP/s) | floor ms (GFLOP/s) |"]
    lines.append("|---|---|---|---|---|---|---|")
    for row in rows:
        for kind, k in row["kernels"].items():
            lines.append(
                f"| {row['work']} | {row['model']} | {row['batch']} | {kind} | {k['gflop']:.1f} "
                f"| {k['in_step_s'] * 1e3:.0f} ({k['gflop'] / k['in_step_s']:.0f}) "
                f"| {k['floor_s'] * 1e3:.0f} ({k['gflop'] / k['floor_s']:.0f}) |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--works", nargs="+", default=["pretrain", "eval", "linear"], choices=["pretrain", "linear", "finetune", "eval"]
    )
    parser.add_argument("--models", nargs="+", default=["vit_xs", "vit_s"], choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[32])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument(
        "--repeats", type=int, default=1, help="processes per step time (median), alternating with the original's"
    )
    parser.add_argument("--original", help="a local checkout of kweimann/ECG-JEPA: also time its step")
    parser.add_argument("--out", default="bench/results/ceiling.json")
    args = parser.parse_args()
    peak = matmul_peak(torch.float32, torch.device("cpu"))
    rows = [
        measure(work, model, batch, args.steps, args.repeats, args.original)
        for work in args.works
        for model in args.models
        for batch in args.batches
    ]
    print(f"fp32 matmul peak measured now: {peak:.0f} GFLOP/s, {torch.get_num_threads()} threads")
    print(table(rows, peak))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"fp32_peak_gflops": peak, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

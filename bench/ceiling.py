"""How fast a step could run with the kernels this torch ships: the floor under an eager CPU step.

Runs one of our fp32 bench steps under a dispatch mode that times every aten call where it runs, then
replays each matrix product, convolution and attention kernel on its own (same shapes, strides and dtype;
random values; warm caches) and times it again. Two floors follow:

- ``eager floor`` = the kernels at their stand-alone speed + every other op (GELU, LayerNorm, adds, copies,
  the optimiser's and EMA's element-wise work) as long as it took in the step;
- ``fused floor`` = the kernels at their stand-alone speed and nothing else, as if all other work were
  fused away for free. No implementation built on these kernels can step faster than this.

Step times (ours, and the original's with ``--original``) come from fresh processes, as in ``bench.py``.
The original's step time divided by our fused floor bounds the speed-up that any code built on these
kernels can reach over it; a target above that bound needs faster kernels or fewer FLOPs.

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
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry, shape_wrapper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SIZES, allocator_env, cpu_attention_flops, make_step, matmul_peak, run_child  # noqa: E402

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
}
FLOPS = {**flop_registry, **{op: shape_wrapper(f) for op, f in cpu_attention_flops().items()}}


@dataclass(frozen=True)
class TensorSpec:
    """What a replay needs of a tensor argument: its layout, not its values."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype

    def make(self, generator: torch.Generator) -> torch.Tensor:
        extent = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True)) if all(self.shape) else 0
        base = torch.randn(extent, generator=generator).to(self.dtype)
        return base.as_strided(self.shape, self.stride)


def spec_of(value: object) -> object:
    return (
        TensorSpec(tuple(value.shape), tuple(value.stride()), value.dtype) if isinstance(value, torch.Tensor) else value
    )


class StepTimer(TorchDispatchMode):
    """Times each aten call in place; keeps the kernels' argument layouts (and call counts) for the replay."""

    def __init__(self) -> None:
        super().__init__()
        self.in_step_s: dict[str, float] = defaultdict(float)
        self.flops: dict[str, int] = defaultdict(int)
        self.kernel_calls: dict[str, tuple[str, object, tuple, int]] = {}

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
            key = f"{func}{layout}"
            count = self.kernel_calls[key][3] if key in self.kernel_calls else 0
            self.kernel_calls[key] = (kind, func, layout, count + 1)
        return out


def stand_alone_s(func, layout: tuple, min_time_s: float = 0.05) -> float:
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


def step_times_s(work: str, model: str, batch: int, steps: int, repeats: int, original: str | None) -> dict:
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


def measure(work: str, model: str, batch: int, steps: int, repeats: int, original: str | None) -> dict:
    """Step times, kernels in the step and alone, and the two floors of one fp32 step."""
    times = step_times_s(work, model, batch, steps, repeats, original)
    torch.manual_seed(0)
    step, _ = make_step(work, model, batch, bf16=False)
    for _ in range(3):
        step()
    timer = StepTimer()
    with timer:
        step()
    alone: dict[str, float] = defaultdict(float)
    for kind, func, layout, count in timer.kernel_calls.values():
        alone[kind] += count * stand_alone_s(func, layout)
    result = {
        "work": work,
        "model": model,
        "batch": batch,
        "step_s": times["ecgjepa"],
        "kernels": {
            kind: {"in_step_s": timer.in_step_s[kind], "alone_s": alone[kind], "gflop": timer.flops[kind] / 1e9}
            for kind in sorted(alone)
        },
        "other_in_step_s": timer.in_step_s["other"],
        "fused_floor_s": sum(alone.values()),
        "eager_floor_s": sum(alone.values()) + timer.in_step_s["other"],
    }
    if original:
        result["original_step_s"] = times["original"]
    return result


def table(rows: list[dict], peak_gflops: float) -> str:
    """Markdown: one row per step; GFLOP/s in brackets, % of the fp32 matmul peak for the fused floor."""
    lines = [
        "| work | model | batch | step ms | kernels in the step, ms | kernels alone, ms | other ops, ms "
        "| eager floor ms | fused floor ms (% peak) | original ms | original ÷ fused floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        gflop = sum(k["gflop"] for k in row["kernels"].values())
        in_step = sum(k["in_step_s"] for k in row["kernels"].values())
        floor = row["fused_floor_s"]
        original = row.get("original_step_s")
        versus = f"{original * 1e3:.0f} | {original / floor:.2f}×" if original else "– | –"
        lines.append(
            f"| {row['work']} | {row['model']} | {row['batch']} | {row['step_s'] * 1e3:.0f} "
            f"| {in_step * 1e3:.0f} ({gflop / in_step:.0f}) | {floor * 1e3:.0f} ({gflop / floor:.0f}) "
            f"| {row['other_in_step_s'] * 1e3:.0f} | {row['eager_floor_s'] * 1e3:.0f} "
            f"| {floor * 1e3:.0f} ({gflop / floor / peak_gflops * 100:.0f} %) | {versus} |"
        )
    detail = ["", "| work | model | batch | kernel | GFLOP | in the step ms (GFLOP/s) | alone ms (GFLOP/s) |"]
    detail.append("|---|---|---|---|---|---|---|")
    for row in rows:
        for kind, k in row["kernels"].items():
            detail.append(
                f"| {row['work']} | {row['model']} | {row['batch']} | {kind} | {k['gflop']:.1f} "
                f"| {k['in_step_s'] * 1e3:.0f} ({k['gflop'] / k['in_step_s']:.0f}) "
                f"| {k['alone_s'] * 1e3:.0f} ({k['gflop'] / k['alone_s']:.0f}) |"
            )
    return "\n".join(lines + detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--works", nargs="+", default=["pretrain", "eval", "linear"], choices=["pretrain", "linear", "finetune", "eval"]
    )
    parser.add_argument("--models", nargs="+", default=["vit_xs", "vit_s"], choices=list(SIZES))
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

"""Throughput and memory benchmark: pre-training, linear probe, fine-tuning and 7-crop evaluation.

Each measurement runs in its own process (so peak RSS is its own), times the median of ``--steps`` steps
after ``--warmup`` steps, counts FLOPs with ``torch.utils.flop_counter`` and relates them to a matmul
peak measured on this machine. Prints a table and writes JSON.

    python bench/bench.py                              # ViT-XS/S x batch 32/128 x fp32/bf16, all work kinds
    python bench/bench.py --models vit_xs --batches 32 --works pretrain --precisions fp32 --checkpointing none
    python bench/bench.py --original ~/src/ECG-JEPA --repeats 2   # the original's steps side by side (original.py)
    python bench/bench.py --device cuda --models vit_s --batches 2048 --works pretrain --precisions bf16
    python bench/table.py bench/results/bench.json                # the JSON as Markdown tables

On CUDA each step is synchronised before its clock stops, float32 matrix products use TF32 (as our
``train.py`` and the original's scripts set on a GPU), the peak is the GPU's own, and the peak GPU memory is
reported beside the RSS. Masks are drawn before timing (a pool of batches, cycled): in training the loader
processes draw them.
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ecgjepa.accel.precision import set_float32_precision
from ecgjepa.utils.paths import conf_dir

MODELS = ("vit_xs", "vit_s", "vit_b")  # options of conf/model
WORKS = ("pretrain", "linear", "finetune", "eval", "loader")


ALLOCATORS = {"system": None, "tcmalloc": "tcmalloc_minimal", "jemalloc": "jemalloc"}


def allocator_env(name: str) -> dict[str, str]:
    """Environment for a child process that runs with ``name`` as its malloc (preloaded shared library)."""
    env = dict(os.environ)
    if ALLOCATORS[name] is None:
        return env
    lib = ctypes.util.find_library(ALLOCATORS[name])
    if lib is None:
        raise SystemExit(
            f"--allocator {name}: lib{ALLOCATORS[name]} not found (Debian/Ubuntu: apt-get install "
            f"{'libtcmalloc-minimal4' if name == 'tcmalloc' else 'libjemalloc2'})"
        )
    env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), lib]))
    return env


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so host clocks time the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, reps: int = 10) -> float:
    """Best GFLOP/s of square matrix products of a few sizes (the machine's practical matmul peak).

    On CUDA the fp32 peak is the TF32 one (the precision the steps run at there)."""
    products = [torch.matmul]
    best = 0.0
    sizes = (4096, 8192) if device.type == "cuda" else (1024, 2048, 3072)
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
        for product in products:
            product(a, b)
            for _ in range(reps):
                synchronize(device)
                t = time.perf_counter()
                product(a, b)
                synchronize(device)
                best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def cpu_kernel_flops() -> dict:
    """FLOP formulas for the CPU kernels ``FlopCounterMode`` does not count itself: the flash-attention
    kernels (torch 2.13 registers only the CUDA ones; without them ~16 % of a ViT-XS pre-training step's
    FLOPs go uncounted)."""
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    return {
        aten._scaled_dot_product_flash_attention_for_cpu: forward,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }


def make_step(
    work: str,
    model: str,
    batch: int,
    bf16: bool,
    checkpointing: str = "none",
    device: torch.device | None = None,
):
    """Return the step function of one kind of work (eval's takes ``count_flops``) and a function that
    compiles the step's modules (``torch.compile``, as ``accel.compile=true`` does in training), or None.
    The modules carry ``accel=auto``'s speed work, with ``checkpointing`` as activation checkpointing."""
    from omegaconf import OmegaConf
    from timing_masks import mask_pool

    from ecgjepa.accel import Accel, compile_submodules
    from ecgjepa.callbacks.target_momentum import ema_update
    from ecgjepa.core.leads import CANONICAL_LEADS
    from ecgjepa.models import ModelConfig
    from ecgjepa.modules.classifier import ClassifierModule
    from ecgjepa.modules.jepa import JEPAModule
    from ecgjepa.optim import adamw, param_groups
    from ecgjepa.utils.hydra import load_group_option

    cfg = ModelConfig.from_dict(
        {**load_group_option("model", model), "channels": list(CANONICAL_LEADS), "channel_size": 5000}
    )
    auto = OmegaConf.to_container(OmegaConf.load(conf_dir() / "accel" / "auto.yaml"))
    accel = Accel.from_config({**auto, "activation_checkpointing": checkpointing})
    device = device or torch.device("cpu")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    if work == "pretrain":
        module = accel.apply(JEPAModule(cfg.to_dict(), load_group_option("optim", "paper")).to(device))
        # fused=None: the fused kernel on CUDA, the per-tensor loop on the CPU (what training picks).
        opt = adamw(param_groups([module.encoder, module.predictor], 0.05), 1e-4, (0.9, 0.99), 1e-6)
        masks = mask_pool(batch, 25, 10, device)
        x = torch.randn(batch, 12, 5000, device=device)

        def step() -> None:
            keep, pred = next(masks)
            with autocast:
                loss, _ = module.jepa_loss(x, keep, pred)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            ema_update(module.target_encoder, module.encoder, 0.999)

        return step, lambda: compile_submodules(module)
    protocol = load_group_option("protocol", {"linear": "linear", "finetune": "finetune", "eval": "linear"}[work])
    module = accel.apply(ClassifierModule(cfg.to_dict(), protocol, 71, "multilabel", 500).to(device))
    if work == "eval":
        module.eval()
        x = torch.randn(batch, 12, 5000, device=device)

        def step(count_flops: bool = False) -> None:
            # FlopCounterMode needs autograd bookkeeping: count on a forward with grad mode on.
            with torch.inference_mode(not count_flops), autocast:
                module(x)

        return step, None
    opt = adamw(param_groups([module.model], 0.01), 1e-4, (0.9, 0.999), 1e-8)
    x, y = torch.randn(batch, 12, 1250, device=device), (torch.rand(batch, 71, device=device) < 0.1).float()

    def step() -> None:
        with autocast:
            loss = module.loss(module.model(x).float(), y)
        loss.backward()
        if protocol["gradient_clip"] > 0:  # as the trainer's gradient_clip_val does
            torch.nn.utils.clip_grad_norm_(module.model.parameters(), protocol["gradient_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, None


def loader_rate(batch: int, data_dir: str) -> dict:
    """Batches/s the pre-training data pipeline produces in one process (sample dump, masks included)."""
    from ecgjepa.core.dump_reader import SourceDump
    from ecgjepa.data.masks import BlockMaskSampler
    from ecgjepa.data.pretrain import MixtureBatches, parse_sources

    sources = parse_sources({"ptbxl": {"weight": 1.0, "folds": [1, 2, 3, 4, 5, 6, 7, 8]}})
    dataset = MixtureBatches(
        {"ptbxl": SourceDump(data_dir, "ptbxl")}, sources, 5000, batch, BlockMaskSampler(25, 10, 0.15, 0.25)
    )
    times = []
    for i in range(25):
        t = time.perf_counter()
        dataset.make_batch(i)
        times.append(time.perf_counter() - t)
    med = statistics.median(times[5:])
    return {"batches_per_s": 1 / med, "ecgs_per_s": batch / med}


def measure(args: argparse.Namespace) -> dict:
    """One (work, model, batch, precision) measurement; runs inside a child process."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    set_float32_precision(None)  # TF32 on CUDA, as train.py and the original's scripts set
    if args.work == "loader":
        result = loader_rate(args.batch, args.data_dir)
    else:
        bf16 = args.precision == "bf16"
        if args.impl == "original":
            from original import make_original_step

            step, compile_step = make_original_step(args.work, args.model, args.batch, bf16, args.original, device)
        else:
            step, compile_step = make_step(args.work, args.model, args.batch, bf16, args.mode, device)
        from torch.utils.flop_counter import FlopCounterMode

        # FLOPs of the step as run, counted eagerly: 'selective' checkpointing recomputes no matrix product, so
        # its count equals the model's; with 'full' it includes the recomputed forward (hardware FLOPs).
        with FlopCounterMode(display=False, custom_mapping=cpu_kernel_flops()) as counter:
            step(count_flops=True) if args.work == "eval" else step()
        flops = counter.get_total_flops()
        if args.compile:
            if compile_step is None:
                raise SystemExit(f"--compile: only pre-training steps are compiled, not {args.work}")
            compile_step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        warmup_start = time.perf_counter()
        for _ in range(args.warmup):
            step()
        synchronize(device)
        warmup_s = time.perf_counter() - warmup_start
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            step()
            synchronize(device)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        records = args.batch  # eval: records of 7 crops each; train steps: one crop/record per sample
        result = {
            "step_s": med,
            "ecgs_per_s": records / med,
            "gflop_per_step": flops / 1e9,
            "gflops": flops / med / 1e9,
            "warmup_s": warmup_s,  # includes compilation with --compile
        }
        if device.type == "cuda":
            result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_xs", "vit_s"], choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--works", nargs="+", default=list(WORKS), choices=list(WORKS))
    parser.add_argument(
        "--checkpointing",
        nargs="+",
        default=["none", "selective"],
        choices=["none", "selective", "full"],
        help="activation checkpointing modes to measure (pre-training only)",
    )
    parser.add_argument(
        "--allocator",
        default="system",
        choices=list(ALLOCATORS),
        help="malloc for the measuring processes: glibc, or tcmalloc/jemalloc preloaded (must be installed)",
    )
    parser.add_argument(
        "--original",
        metavar="DIR",
        help="a local checkout of the original kweimann/ECG-JEPA: measure its steps side by side with ours",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="processes per measurement (interleaved with the original's); the median is reported",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N): where the steps run")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the pre-training modules (ours: accel.compile=true)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data-dir", default="data/sample", help="data root with the ptbxl dump (loader)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/bench.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="ecgjepa", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats: expected an integer >= 1, got {args.repeats}")
    if args.child:
        print(json.dumps(measure(args)))
        return
    device = torch.device(args.device)
    set_float32_precision(None)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {name: matmul_peak(dtypes[name], device) for name in args.precisions}
    print(f"matmul peak on {device}: " + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items()))
    rows = []
    header = (
        f"{'impl':8} {'work':9} {'model':7} {'batch':>5} {'prec':5} {'act ckpt':9} {'ECG/s':>8} {'step s':>7} "
        f"{'GFLOP/s':>8} {'% peak':>6} {'RSS MB':>7}{' GPU MB' if device.type == 'cuda' else ''}"
    )
    print(header)
    machine = {**machine_info(peaks, device), "allocator": args.allocator, "compile": args.compile}
    env = allocator_env(args.allocator)
    for work in args.works:
        modes = args.checkpointing if work == "pretrain" else ["none"]
        combos = [(m, b, p, c) for m in args.models for b in args.batches for p in args.precisions for c in modes]
        if work == "loader":
            combos = [("-", b, "-", "-") for b in args.batches]
        impls = ["ecgjepa", "original"] if args.original and work != "loader" else ["ecgjepa"]
        for model, batch, precision, mode in combos:
            runs: dict[str, list[dict]] = {}
            # Interleaved repeats, the order flipping each round: slow phases of a noisy machine hit both.
            order = impls if mode in ("none", "-") else ["ecgjepa"]
            for r in range(args.repeats):
                for impl in order if r % 2 == 0 else order[::-1]:
                    runs.setdefault(impl, []).append(run_child(args, work, model, batch, precision, mode, impl, env))
            for impl, results in runs.items():
                result = {
                    "impl": impl,
                    "work": work,
                    "model": model,
                    "batch": batch,
                    "precision": precision,
                    "activation_checkpointing": mode,
                    "allocator": args.allocator,
                    "device": args.device,
                    "compile": args.compile,
                    **combine_runs(results),
                }
                if "gflops" in result:
                    result["pct_peak"] = 100 * result["gflops"] / peaks[precision]
                rows.append(result)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(
                    json.dumps({"machine": machine, "results": rows, "speedups": speedups(rows)}, indent=2)
                )
                gpu_mb = f" {result['peak_gpu_mb']:6.0f}" if "peak_gpu_mb" in result else ""
                print(
                    f"{impl:8} {work:9} {model:7} {batch:5d} {precision:5} {mode:9} {result['ecgs_per_s']:8.1f} "
                    f"{result.get('step_s', 0):7.3f} {result.get('gflops', 0):8.1f} "
                    f"{result.get('pct_peak', 0):6.1f} {result['peak_rss_mb']:7.0f}{gpu_mb}",
                    flush=True,
                )
    for line in speedups(rows):
        rounds = line["speedup_rounds"]
        spread = f", rounds x{min(rounds):.2f}-{max(rounds):.2f}" if len(rounds) > 1 else ""
        print(
            f"ours {line['precision']} / original {line['original_precision']}  {line['work']:9} "
            f"{line['model']:7} {line['batch']:5d}  x{line['speedup']:.2f} ECG/s{spread}  (original "
            f"{line['original_pct_peak']:.0f} % of peak, ours {line['ours_pct_peak']:.0f} %; "
            f"RSS {line['rss_ratio']:.2f}x)"
        )
    print(f"wrote {args.out}")


def combine_runs(results: list[dict]) -> dict:
    """One row from repeated runs: median step time and throughput, the largest peak RSS, every run's ECG/s."""
    combined = {**results[0], "ecgs_per_s": statistics.median(r["ecgs_per_s"] for r in results)}
    if "step_s" in combined:
        combined["step_s"] = statistics.median(r["step_s"] for r in results)
        combined["gflops"] = combined["gflop_per_step"] / combined["step_s"]
    for key in ("peak_rss_mb", "peak_gpu_mb"):
        if key in combined:
            combined[key] = max(r[key] for r in results)
    combined["ecgs_per_s_runs"] = [r["ecgs_per_s"] for r in results]
    return combined


def run_child(
    args: argparse.Namespace, work: str, model: str, batch: int, precision: str, mode: str, impl: str, env: dict
) -> dict:
    """One measurement in a fresh process (its own peak RSS); the child prints its result as JSON."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        f"--work={work}",
        f"--model={model}",
        f"--batch={batch}",
        f"--precision={precision}",
        f"--mode={mode}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--data-dir={args.data_dir}",
        f"--device={args.device}",
        *(["--compile"] if args.compile else []),
        f"--impl={impl}",
        *([f"--original={args.original}"] if impl == "original" else []),
    ]
    child = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if child.returncode:
        raise SystemExit(f"{impl} {work} {model} batch {batch} {precision} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def speedups(rows: list[dict]) -> list[dict]:
    """Ours vs the original for every (work, model, batch) measured on both, no checkpointing: at the same
    precision, and ours at bf16 against the original's fp32 (the only precision it runs on a CPU, so the
    issue's "best CPU setting" comparison). ``speedup_rounds`` pairs the runs of each interleaved round; it is
    empty across precisions, whose runs come from separate loops."""
    key = ("work", "model", "batch")
    ours = {
        (*(r[k] for k in key), r["precision"]): r
        for r in rows
        if r["impl"] == "ecgjepa" and r["activation_checkpointing"] in ("none", "-")
    }
    lines = []
    for r in rows:
        if r["impl"] != "original":
            continue
        precisions = [r["precision"], *(["bf16"] if r["precision"] == "fp32" else [])]
        for precision in precisions:
            mine = ours.get((*(r[k] for k in key), precision))
            if mine is None:
                continue
            same = precision == r["precision"]
            pairs = zip(mine.get("ecgs_per_s_runs", []), r.get("ecgs_per_s_runs", []), strict=True) if same else []
            lines.append(
                {
                    **{k: r[k] for k in key},
                    "precision": precision,
                    "original_precision": r["precision"],
                    "speedup": mine["ecgs_per_s"] / r["ecgs_per_s"],
                    "speedup_rounds": [a / b for a, b in pairs],
                    "ours_pct_peak": mine["pct_peak"],
                    "original_pct_peak": r["pct_peak"],
                    "rss_ratio": mine["peak_rss_mb"] / r["peak_rss_mb"],
                }
            )
    return lines


def machine_info(peaks: dict[str, float], device: torch.device) -> dict:
    from baselines import cpu_model

    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": peaks,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


if __name__ == "__main__":
    main()

"""Pre-training step time and peak memory of every method (conf/method/), on this machine: the ViT methods on one
ViT size (``--model``), the methods of the baselines' sources on their own networks (SimCLR and BYOL: xresnet1d50,
CPC: fc_lstm).

A step is what ``ecgjepa-train`` runs per batch: the method's loss on one batch at the method's own input (JEPA:
10 s at 500 Hz with block masks from the data stream; ST-MEM's family, MoCo v3 and CMSC: 9 s at 250 Hz; SimCLR and
BYOL: 2.5 s at 100 Hz, CPC: 10 s at 100 Hz), its augmentations or masks, backward, the optimiser step and the EMA
update of the methods that keep a target, with the speed-ups and the precision ``accel=auto``
gives ``ecgjepa-train`` (bf16 autocast where the device computes bf16 natively). The median of ``--steps`` after two
warm-up steps. Each method runs in its own process, so the peak (RSS on the CPU, allocated memory on a GPU) is its
own.

    python bench/methods.py --model vit_xs --batch 32 --steps 5 --out bench/results/<machine>_methods.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from baselines import write_rows  # noqa: E402
from timing_masks import mask_pool  # noqa: E402

from ecgjepa.accel import Accel  # noqa: E402
from ecgjepa.accel.capability import native_bf16  # noqa: E402
from ecgjepa.callbacks.target_momentum import update_targets  # noqa: E402
from ecgjepa.core.leads import CANONICAL_LEADS  # noqa: E402
from ecgjepa.train import build_method  # noqa: E402
from ecgjepa.utils.hydra import compose_config  # noqa: E402

METHODS = ("jepa", "st_mem", "mtae", "mlae", "moco_v3", "cmsc", "simclr", "byol", "cpc")
OWN_NETWORK = ("simclr", "byol", "cpc")  # trained on their source's network, not --model


def measure(method: str, model: str, batch: int, steps: int, device: torch.device) -> dict:
    """One method's step time and peak memory (run in a process of its own)."""
    network = [] if method in OWN_NETWORK else [f"model={model}"]
    cfg = compose_config("train", [f"method={method}", *network, "optim=demo"], REPO / "outputs" / "bench")
    OmegaConf.update(cfg, "data.global_batch_size", batch)
    data = cfg.data
    rate = data.input_rate or data.sampling_frequency
    shape = {"channels": list(CANONICAL_LEADS), "channel_size": data.channel_size, "sampling_frequency": rate}
    shape |= {"band_pass": data.band_pass, "standardise": data.standardise}
    torch.manual_seed(0)
    module = Accel.from_config(cfg.accel).for_device(device.type).apply(build_method(cfg, shape).to(device))
    optimizer = module.configure_optimizers()["optimizer"]
    x = torch.randn(batch, 12, data.channel_size, device=device)
    masks = mask_pool(batch, cfg.model.patch_size, data.min_block_size, device) if data.masks else None
    keeps_target = (cfg.callbacks.get("target_momentum") or None) is not None
    bf16, _ = native_bf16(device.type)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        batch_ = (x, *next(masks)) if masks is not None else (x,)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = module.method_loss(batch_, 0)
        loss.backward()
        optimizer.step()
        if keeps_target:  # the EMA update, as the callback runs it after each step
            update_targets(module, 0.998)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    result = {
        "method": method,
        "model": cfg.model.name,
        "encoder_parameters": sum(p.numel() for p in module.exported_encoder().parameters()),
        "trained_parameters": sum(p.numel() for m in module.trained_modules() for p in m.parameters()),
        "input": f"{data.channel_size} samples at {rate} Hz",
        "batch": batch,
        "precision": "bf16-mixed" if bf16 else "32-true",
        "step_s": seconds,
        "ecgs_per_s": batch / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--model", default="vit_xs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.model, args.batch, args.steps, torch.device(args.device))))
        return
    rows = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "--one", method, "--model", args.model, "--batch", str(args.batch)]
        cmd += ["--steps", str(args.steps), "--device", args.device]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    gpu = " | peak GPU MB" if args.device.startswith("cuda") else ""
    header = "| method | network | encoder parameters | input | precision | "
    header += f"step, batch {args.batch} | ECG/s | peak RSS MB"
    print(f"{header}{gpu} |")
    print("|---|---|---|---|---|---|---|---|" + ("---|" if gpu else ""))
    for r in rows:
        gpu_cell = f" {r['peak_gpu_mb']:.0f} |" if gpu else ""
        print(
            f"| {r['method']} | {r['model']} | {r['encoder_parameters']:,} | {r['input']} | {r['precision']} | "
            f"{r['step_s']:.3f} s | {r['ecgs_per_s']:.0f} | {r['peak_rss_mb']:.0f} |{gpu_cell}"
        )
    if args.out:
        write_rows(args.out, rows, args.device)


if __name__ == "__main__":
    main()

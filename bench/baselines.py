"""Training-step and inference time of the supervised baselines (inception1d, xresnet1d50, 4FC+2LSTM+2FC) beside
the ViT-XS on this machine: a supervised step at the source's batch (128 crops of 2.5 s, source head, AdamW,
backward) and the inference of one 10 s record as its 7 windows, each the median of ``--steps`` after warm-up.

    python bench/baselines.py --steps 5 --out bench/results/<machine>_baselines.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ecgjepa.accel.capability import native_bf16  # noqa: E402
from ecgjepa.core.leads import CANONICAL_LEADS  # noqa: E402
from ecgjepa.modules.classifier import ClassifierModule  # noqa: E402
from ecgjepa.utils.hydra import load_group_option  # noqa: E402

MODELS = ("inception1d", "xresnet1d50", "fc_lstm", "vit_xs")


def module_for(name: str) -> tuple[ClassifierModule, int]:
    """The model as protocol=supervised (baselines) or a fine-tuning ViT trains it, with its input rate."""
    model = load_group_option("model", name)
    rate = model.get("sampling_frequency", 500)
    protocol = load_group_option("protocol", "supervised" if "arch" in model else "finetune")
    if "arch" not in model:
        protocol = {**protocol, "use_register": True}
    shape = {"channels": list(CANONICAL_LEADS), "channel_size": 10 * rate}
    return ClassifierModule({**model, **shape}, protocol, 71, "multilabel", rate), rate


def median_seconds(step, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    module, rate = module_for(name)
    crop = round(2.5 * rate)
    optimizer = module.configure_optimizers()["optimizer"]
    x, y = torch.randn(batch, 12, crop), (torch.rand(batch, 71) < 0.1).float()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        module.loss(module.model(x), y).backward()
        optimizer.step()

    module.train()
    train = median_seconds(train_step, steps)
    module.eval()
    record = torch.randn(1, 12, 10 * rate)

    def infer() -> None:
        with torch.inference_mode():
            module(record)

    return {
        "model": name,
        "parameters": sum(p.numel() for p in module.parameters()),
        "input_rate": rate,
        "batch": batch,
        "train_step_s": train,
        "train_records_per_s": batch / train,
        "inference_ms_per_ecg": 1000 * median_seconds(infer, steps * 4),
    }


def cpu_model() -> str:
    """The CPU's model name, family and model number as Linux reports them (else what ``platform`` knows): the CPU
    of a cloud machine changes between sessions, and the figures must say which one produced them."""
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def write_rows(path: Path, rows: list[dict], device: str = "cpu") -> None:
    """Benchmark rows as JSON with the machine that produced them: CPU model, bf16 support, torch, threads, and the
    GPU where ``device`` is one."""
    machine = {
        "cpu": cpu_model(),
        "bf16": native_bf16("cpu")[1],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
    }
    path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [measure(name, args.batch, args.steps) for name in args.models]
    print(f"| model | parameters (71 classes) | input | train step, batch {args.batch} | inference per 10 s ECG |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['parameters']:,} | {r['input_rate']} Hz | {r['train_step_s']:.2f} s "
            f"({r['train_records_per_s']:.0f} crops/s) | {r['inference_ms_per_ecg']:.1f} ms |"
        )
    if args.out:
        write_rows(args.out, rows)


if __name__ == "__main__":
    main()

"""onnxruntime beside PyTorch on this CPU: time per ECG of the ViT-XS encoder (a 10 s record at 500 Hz) and of the
ViT-XS attentive-probe classifier (a 10 s record as its 7 windows of 2.5 s, logits averaged), at batch 1 and 32,
each the median of ``--steps`` after warm-up. PyTorch runs float32 under ``torch.inference_mode`` (as
``ecgjepa-predict`` with ``accel.inference_precision=32-true``); the ONNX files are those ``ecgjepa-export
format=onnx`` writes (:mod:`ecgjepa.deploy`), run by onnxruntime's CPU provider with its default threads.

    python bench/onnx_speed.py --steps 10 --out bench/results/<machine>_onnx.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from baselines import median_seconds, write_rows  # noqa: E402

from ecgjepa.core.leads import CANONICAL_LEADS  # noqa: E402
from ecgjepa.deploy import CroppedClassifier, export_classifier_onnx, export_encoder_onnx, onnx_session  # noqa: E402
from ecgjepa.modules.classifier import ClassifierModule  # noqa: E402
from ecgjepa.utils.hydra import load_group_option  # noqa: E402


def models(folder: Path) -> dict[str, tuple[torch.nn.Module, Path]]:
    """The ViT-XS encoder and attentive-probe classifier (random weights: time does not depend on them)."""
    torch.manual_seed(0)
    model = {**load_group_option("model", "vit_xs"), "channels": list(CANONICAL_LEADS), "channel_size": 5000}
    module = ClassifierModule(model, load_group_option("protocol", "linear"), 5, "multilabel", 500).eval()
    encoder = module.model.encoder
    encoder_path, _ = export_encoder_onnx(encoder, encoder.config, folder / "encoder")
    classifier_path, _ = export_classifier_onnx(module, 500, 5000, folder / "classifier")
    return {"encoder": (encoder, encoder_path), "classifier": (CroppedClassifier(module).eval(), classifier_path)}


def measure(name: str, model: torch.nn.Module, path: Path, batch: int, steps: int) -> dict:
    x = np.random.default_rng(0).standard_normal((batch, 12, 5000)).astype(np.float32)
    session = onnx_session(path)
    tensor = torch.from_numpy(x)

    def run_torch() -> None:
        with torch.inference_mode():
            model(tensor)

    def run_onnx() -> None:
        session.run(None, {"ecg": x})

    torch_s, onnx_s = median_seconds(run_torch, steps), median_seconds(run_onnx, steps)
    return {
        "model": name,
        "batch": batch,
        "torch_ms_per_ecg": 1000 * torch_s / batch,
        "onnxruntime_ms_per_ecg": 1000 * onnx_s / batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        built = models(Path(tmp))
        rows = [measure(n, m, p, b, args.steps) for n, (m, p) in built.items() for b in args.batches]
    print("| ViT-XS | batch | PyTorch float32 | onnxruntime |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['batch']} | {r['torch_ms_per_ecg']:.1f} ms | {r['onnxruntime_ms_per_ecg']:.1f} ms |"
        )
    if args.out:
        write_rows(args.out, rows)


if __name__ == "__main__":
    main()

"""ONNX: an encoder, or an evaluation run's whole classifier with its crop averaging, as one ``model.onnx`` that
onnxruntime runs without PyTorch.

The graph comes from ``torch.onnx.export`` (the ``torch.export`` path) with a dynamic batch and a dynamic length:
an encoder takes (B, 12, T) normalised leads at its rate, T a multiple of its patch (any T for a baseline network),
and returns its tokens; a classifier takes (B, 12, T), T at least one crop, cuts the crops that fit as
:class:`~ecgjepa.modules.classifier.ClassifierModule` does, and returns the task's outputs (class probabilities, or
a regression's value). Each file is checked with onnxruntime against PyTorch on real records of the bundled PTB-XL
sample when it is written; a difference above :data:`TOLERANCE` removes it and fails the export.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ecgjepa.core.files import atomic_write
from ecgjepa.core.records import RecordRef, folder_spec, prepare_record, read_record
from ecgjepa.core.signal import resample
from ecgjepa.models import ModelConfig
from ecgjepa.modules.classifier import ClassifierModule, spread_starts
from ecgjepa.utils.paths import bundled_sample_dir

if TYPE_CHECKING:
    import onnxruntime

ONNX_FILE = "model.onnx"
TOLERANCE = 1e-4  # the largest absolute difference from PyTorch a written model.onnx may show
CHECK_RECORDS = ("00001_lr", "00002_lr", "00003_lr", "00004_lr", "00005_lr", "00006_lr", "00007_lr")


class CroppedClassifier(nn.Module):
    """An evaluation run's classifier on records of one length: the crops that fit (spread as
    :func:`~ecgjepa.modules.classifier.crop_starts` spreads them), their logits averaged (or their maximum), then
    the task's outputs. The whole of it is one graph, so that ONNX holds the crop averaging too."""

    def __init__(self, module: ClassifierModule) -> None:
        super().__init__()
        self.model, self.crop, self.stride = module.model, module.crop, module.stride
        self.aggregate, self.task_kind = module.protocol.aggregate, module.task_kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop is None:
            return self.task_kind.outputs(self.model(x).float())
        spare = x.shape[-1] - self.crop
        count = spare // self.stride + 1
        # One more crop, a copy of the first (spread_starts' last start): torch.export keeps no dimension symbolic
        # that may be 1, so the graph always cuts at least two; the copy leaves the maximum as it is and is taken
        # out of the mean.
        starts = spread_starts(spare, count)
        crops = x[:, :, starts[:, None] + torch.arange(self.crop)[None]]  # (B, leads, K + 1, crop)
        b, leads, k, _ = crops.shape
        logits = self.model(crops.permute(0, 2, 1, 3).reshape(b * k, leads, self.crop)).float().view(b, k, -1)
        if self.aggregate == "max":
            return self.task_kind.outputs(logits.amax(dim=1))
        return self.task_kind.outputs((logits.sum(dim=1) - logits[:, -1]) / count)


def length_rule(config: object) -> tuple[int, int]:
    """(granule, shortest) input length of an encoder's graph: whole patches of a ViT, any length for a baseline
    network."""
    if isinstance(config, ModelConfig):
        return config.patch_size, config.patch_size
    return 1, 1


def write_onnx(model: nn.Module, example: torch.Tensor, granule: int, shortest: int, path: Path, output: str) -> Path:
    """Export ``model`` (eval mode) to ``path`` with a dynamic batch and a dynamic length of ``granule`` multiples
    from ``shortest`` samples; input ``ecg``, output ``output``."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    if granule > 1:
        length = granule * torch.export.Dim("granules", min=max(1, shortest // granule), max=100_000)
    else:
        length = torch.export.Dim("samples", min=shortest, max=10_000_000)
    with atomic_write(path) as tmp, torch.no_grad():
        program = torch.onnx.export(
            model.eval(),
            (example,),
            input_names=["ecg"],
            output_names=[output],
            dynamic_shapes={"x": {0: batch, 2: length}},
            dynamo=True,
            verbose=False,
        )
        program.save(str(tmp))
    return path


def check_onnx(model: nn.Module, path: Path, inputs: Iterable[np.ndarray]) -> float:
    """The largest absolute difference between onnxruntime's outputs of ``path`` and PyTorch's for each batch of
    ``inputs``; above :data:`TOLERANCE` the file is removed and a ValueError names it."""
    worst = 0.0
    session = onnx_session(path)
    for x in inputs:
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).float().numpy()
        got = session.run(None, {"ecg": x})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > TOLERANCE:
        path.unlink(missing_ok=True)
        raise ValueError(f"{path}: onnxruntime differs from PyTorch by {worst:.2e} > {TOLERANCE:g} on real records")
    return worst


def onnx_session(path: Path) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session of ``path`` (onnxruntime is imported here, when one is asked for), or a
    FileNotFoundError naming the file and how to write it."""
    import onnxruntime

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX model; write one with `ecgjepa-export RUN OUT format=onnx`")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_inputs(rate: float, lengths: Iterable[int]) -> list[np.ndarray]:
    """Batches of 1 and 7 real records of the bundled PTB-XL sample at ``rate``, each lead z-scored, cut to each of
    ``lengths`` samples (records are read once)."""
    lengths = sorted(lengths)
    folder = bundled_sample_dir() / "records100" / "00000"
    records = []
    for name in CHECK_RECORDS:
        x = prepare_record(read_record(folder, RecordRef(name, name)), folder_spec("check", 1.0)).astype(np.float32)
        x = resample(x, 500, rate) if rate != 500 else x
        records.append(((x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1))[: lengths[-1]].T)
    batches = []
    for length in lengths:
        batch = np.ascontiguousarray(np.stack(records)[:, :, :length], dtype=np.float32)
        batches += [batch[:1], batch]
    return batches


def export_encoder_onnx(encoder: nn.Module, config: object, out_dir: Path) -> tuple[Path, float]:
    """``out_dir/model.onnx`` of an encoder, checked; (path, largest difference from PyTorch)."""
    granule, shortest = length_rule(config)
    rate = float(config.sampling_frequency)
    most = getattr(config, "channel_size", None) or round(10 * rate)
    batches = check_inputs(rate, {max(shortest, (most // 4) // granule * granule), most // granule * granule})
    path = write_onnx(encoder, torch.from_numpy(batches[1]), granule, shortest, out_dir / ONNX_FILE, "tokens")
    return path, check_onnx(encoder, path, batches)


def export_classifier_onnx(module: ClassifierModule, rate: float, samples: int, out_dir: Path) -> tuple[Path, float]:
    """``out_dir/model.onnx`` of an evaluation run's classifier (crops and outputs included), checked on records of
    one crop and of ``samples`` samples; (path, largest difference from PyTorch)."""
    model = CroppedClassifier(module).eval()
    shortest = module.crop or samples
    batches = check_inputs(rate, {shortest, samples})
    path = write_onnx(model, torch.from_numpy(batches[-1]), 1, shortest, out_dir / ONNX_FILE, "outputs")
    return path, check_onnx(model, path, batches)

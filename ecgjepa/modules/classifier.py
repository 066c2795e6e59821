"""PTB-XL evaluation as a LightningModule (ECG-JEPA ``finetune.py``): linear (attentive) probing,
fine-tuning and LP-FT, with strided-crop inference and macro AUROC over the whole split."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multilabel_auroc

from ecgjepa.checkpoint import load_into
from ecgjepa.models import ModelConfig, VisionTransformer
from ecgjepa.models.classifier import ViTClassifier
from ecgjepa.models.config import strict_fields
from ecgjepa.modules.clipping import ClipWithoutScaler
from ecgjepa.optim import adamw, param_groups
from ecgjepa.schedules import learning_rate

INFERENCE_PRECISIONS = ("32-true", "bf16-mixed")  # of validation and test forwards (``inference_precision``)


@dataclass(frozen=True)
class ProtocolConfig:
    """One evaluation protocol (keys as in ECG-JEPA ``configs/eval/*.yaml``)."""

    name: str
    frozen: bool
    attn_pooling: bool
    use_register: bool = True
    bias: bool = False
    dropout: float = 0.0
    steps: int = 5000
    batch_size: int = 128
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-3
    learning_rate_warmup_steps: int = 0
    weight_decay: float = 0.1
    opt_betas: tuple[float, float] = (0.9, 0.999)
    opt_eps: float = 1e-8
    gradient_clip: float = 1.0
    checkpoint_interval: int = 100
    early_stopping_patience: int = 5000
    crop_duration: float | None = 2.5
    crop_stride: float | None = 1.25
    requires_eval_checkpoint: bool = False
    fused: bool | None = None

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ProtocolConfig:
        fields = strict_fields(cls, cfg, "protocol")
        return cls(**{**fields, "opt_betas": tuple(fields.get("opt_betas", (0.9, 0.999)))})

    def lr_at(self, step: int) -> float:
        return learning_rate(
            step, self.learning_rate, self.final_learning_rate, self.learning_rate_warmup_steps, self.steps
        )


def check_inference_precision(value: str) -> None:
    """Raise a ValueError naming the key unless ``value`` is one of :data:`INFERENCE_PRECISIONS`."""
    if value not in INFERENCE_PRECISIONS:
        raise ValueError(f"inference_precision: expected one of {INFERENCE_PRECISIONS}, got {value!r}")


def crop_batch(x: torch.Tensor, crop: int, stride: int) -> torch.Tensor:
    """(B, C, T) -> (B, K, C, crop) strided crops starting at 0, stride, ... (all that fit)."""
    if crop > x.shape[-1]:
        raise ValueError(f"crop of {crop} samples is longer than the record ({x.shape[-1]} samples)")
    return x.unfold(-1, crop, stride).permute(0, 2, 1, 3)


class ClassifierModule(ClipWithoutScaler):
    """Encoder + head trained on PTB-XL labels.

    Args:
        model: encoder model config (sizes; see :class:`ModelConfig`).
        protocol: the ``protocol`` config group (see :class:`ProtocolConfig`).
        num_classes: number of labels of the task.
        multiclass: softmax cross-entropy (ST-MEM) instead of sigmoid BCE.
        sampling_frequency: Hz, to turn crop durations into samples.
        encoder_state: encoder weights to start from (None = random init).
        classifier_state: full classifier weights (LP-FT from a previous evaluation).
        inference_precision: validation and test logits in float32 ('32-true', as the original
            evaluates, whatever the training precision) or under bf16 autocast ('bf16-mixed': faster where
            the device computes bf16 natively; AUROCs no longer bit-comparable with the original's).
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        protocol: Mapping[str, Any],
        num_classes: int,
        multiclass: bool = False,
        sampling_frequency: int = 500,
        encoder_state: Mapping[str, torch.Tensor] | None = None,
        classifier_state: Mapping[str, torch.Tensor] | None = None,
        source: str = "random init",
        inference_precision: str = "32-true",
    ) -> None:
        super().__init__()
        check_inference_precision(inference_precision)
        self.save_hyperparameters(ignore=["encoder_state", "classifier_state"])
        self.protocol = ProtocolConfig.from_dict(protocol)
        p = self.protocol
        # NOTE(parity): the protocol's dropout replaces the encoder's projection/MLP dropout only.
        encoder_cfg = dataclasses.replace(ModelConfig.from_dict(model), dropout=p.dropout, attn_dropout=0.0)
        encoder = VisionTransformer(encoder_cfg)
        if encoder_state is not None:
            load_into(encoder, encoder_state, source)
        self.model = ViTClassifier(encoder, num_classes, p.attn_pooling, p.use_register, p.bias, p.frozen)
        if classifier_state is not None:
            load_into(self.model, classifier_state, source)
        self.multiclass = multiclass
        self.inference_precision = inference_precision
        self.crop = None if p.crop_duration is None else round(p.crop_duration * sampling_frequency)
        self.stride = None if p.crop_stride is None else round(p.crop_stride * sampling_frequency)
        self._outputs: dict[str, list[torch.Tensor]] = {}
        self.results: dict[str, dict[str, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for whole records x (B, C, T): the logits of all strided crops averaged."""
        if self.crop is None:
            return self.model(x)
        crops = crop_batch(x, self.crop, self.stride)
        b, k = crops.shape[:2]
        logits = self.model(crops.reshape(b * k, *crops.shape[2:]))
        return logits.float().view(b, k, -1).mean(dim=1)  # averaged in float32 under bf16 autocast too

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multiclass:
            return F.cross_entropy(logits, targets.argmax(dim=1))
        return F.binary_cross_entropy_with_logits(logits, targets)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1) if self.multiclass else logits.sigmoid()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, targets, _ = batch
        loss = self.loss(self.model(x), targets)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _collect(self, stage: str, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, targets, index = batch
        # NOTE(parity): validation and test run in float32 even when training uses bf16 autocast, unless
        # inference_precision asks for bf16.
        bf16 = self.inference_precision == "bf16-mixed"
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = self(x.float())
        self._outputs.setdefault(stage, []).append(
            torch.cat([index[:, None].float(), self.probabilities(logits.float()), targets], dim=1).detach()
        )
        return self.loss(logits.float(), targets)

    def _gather(self, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """All ranks' (probabilities, targets) of a split, de-duplicated by record position, in order."""
        local = torch.cat(self._outputs.pop(stage))
        rows = self.all_gather(local)
        if rows.ndim == 3:
            rows = rows.reshape(-1, rows.shape[-1])
        order = torch.argsort(rows[:, 0], stable=True)
        rows = rows[order]
        keep = torch.ones(len(rows), dtype=torch.bool, device=rows.device)
        keep[1:] = rows[1:, 0] != rows[:-1, 0]  # DistributedSampler pads with repeated records
        rows = rows[keep]
        c = (rows.shape[1] - 1) // 2
        return rows[:, 1 : 1 + c], rows[:, 1 + c :]

    def auroc(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return multilabel_auroc(probs, targets.long(), num_labels=targets.shape[1], average="macro")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.log("val/loss", self._collect("val", batch), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        probs, targets = self._gather("val")
        self.log("val/auroc", self.auroc(probs, targets), prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(("val", "test")[dataloader_idx], batch)

    def on_test_epoch_end(self) -> None:
        for stage in ("val", "test"):
            if stage in self._outputs:
                probs, targets = self._gather(stage)
                self.results[stage] = {"probabilities": probs.cpu(), "targets": targets.cpu()}
                self.log(f"test/{stage}_auroc" if stage == "val" else "test/auroc", self.auroc(probs, targets))

    def configure_optimizers(self) -> dict[str, Any]:
        p = self.protocol
        optimizer = adamw(param_groups([self.model], p.weight_decay), p.learning_rate, p.opt_betas, p.opt_eps, p.fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: p.lr_at(step) / p.learning_rate)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

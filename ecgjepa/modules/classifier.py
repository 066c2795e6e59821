"""Evaluation as a LightningModule (ECG-JEPA ``finetune.py``): linear (attentive) probing, fine-tuning and LP-FT,
with strided-crop inference; model selection on the validation split's macro AUROC (R² for regression)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ecgjepa.data.kinds import task_kind
from ecgjepa.formats.layouts import load_into
from ecgjepa.models import ModelConfig
from ecgjepa.models.backbones import EncoderConfig, build_encoder, encoder_config
from ecgjepa.models.classifier import Classifier
from ecgjepa.models.config import strict_fields
from ecgjepa.modules.clipping import ClipWithoutScaler
from ecgjepa.optim import adamw, param_groups
from ecgjepa.schedules import learning_rate

INFERENCE_PRECISIONS = ("32-true", "bf16-mixed")  # of validation and test forwards (``inference_precision``)
AGGREGATES = ("mean", "max")  # of the evaluation windows' logits (``protocol.aggregate``)
SCHEDULES = ("warmup_cosine", "one_cycle")


@dataclass(frozen=True)
class ProtocolConfig:
    """One evaluation protocol (keys as in ECG-JEPA ``configs/eval/*.yaml``; the values: conf/protocol/)."""

    name: str
    frozen: bool
    attn_pooling: bool
    use_register: bool
    bias: bool
    dropout: float
    steps: int
    batch_size: int
    learning_rate: float
    final_learning_rate: float
    learning_rate_warmup_steps: int
    weight_decay: float
    opt_betas: tuple[float, float]
    opt_eps: float
    gradient_clip: float
    checkpoint_interval: int
    early_stopping_patience: int
    crop_duration: float | None
    crop_stride: float | None
    requires_eval_checkpoint: bool
    fused: bool | None
    # The keys below came with the supervised baselines; their defaults only complete the protocol of an evaluation
    # checkpoint written before them (every conf/protocol option sets them).
    source_head: bool = False
    aggregate: str = "mean"
    schedule: str = "warmup_cosine"
    one_cycle: dict[str, float] | None = None
    decay_all_parameters: bool = False
    recipe: str | None = None
    epochs: int | None = None
    random_init: bool = False
    discriminative_lr_factor: float = 1.0

    def __post_init__(self) -> None:
        for key, value, choices in (
            ("aggregate", self.aggregate, AGGREGATES),
            ("schedule", self.schedule, SCHEDULES),
        ):
            if value not in choices:
                raise ValueError(f"protocol.{key}: expected one of {choices}, got {value!r}")
        if self.schedule == "one_cycle" and not self.one_cycle:
            raise ValueError("protocol.schedule=one_cycle needs protocol.one_cycle (warmup_fraction, div_factor, ...)")

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ProtocolConfig:
        fields = strict_fields(cls, cfg, "protocol")
        return cls(**{**fields, "opt_betas": tuple(fields["opt_betas"])})

    def lr_at(self, step: int) -> float:
        return learning_rate(
            step, self.learning_rate, self.final_learning_rate, self.learning_rate_warmup_steps, self.steps
        )


def check_inference_precision(value: str) -> None:
    """Raise a ValueError naming the key unless ``value`` is one of :data:`INFERENCE_PRECISIONS`."""
    if value not in INFERENCE_PRECISIONS:
        raise ValueError(f"inference_precision: expected one of {INFERENCE_PRECISIONS}, got {value!r}")


def crop_starts(length: int, crop: int, stride: int) -> list[int]:
    """Where the crops of a record of ``length`` samples start: as many as fit at ``stride``
    (``(length - crop) // stride + 1``), spread evenly from its start to its end. A record whose spare samples
    are a multiple of the stride gets the strided crops 0, stride, ... (a 10 s record: ECG-JEPA's seven)."""
    if crop > length:
        raise ValueError(f"crop of {crop} samples is longer than the record ({length} samples)")
    count = (length - crop) // stride + 1
    return spread_starts(length - crop, count)[:-1].tolist()


def spread_starts(spare: int, count: int) -> torch.Tensor:
    """The starts of ``count`` crops spread over ``spare`` samples (``k * spare / (count - 1)`` rounded half up, in
    integers), then a last start of 0: ``count + 1`` values. Tensor arithmetic on ``count + 1`` values, because an
    exported ONNX graph (where ``spare`` and ``count`` are symbolic) can keep no dimension that may be 1."""
    k = torch.arange(count + 1)
    gaps = (k[-1:] - 1).clamp(min=1)
    return torch.where(k < count, (2 * k * spare + gaps) // (2 * gaps), 0)


def crop_batch(x: torch.Tensor, lengths: torch.Tensor | None, crop: int, stride: int) -> tuple[torch.Tensor, list[int]]:
    """(B, C, T) records, each ``lengths[b]`` samples long (None: all ``T``) -> ``(crops (N, C, crop), counts)``:
    the crops of every record (:func:`crop_starts`), record by record, and how many each has."""
    full = x.shape[-1]
    if lengths is None or bool((lengths == full).all()):
        if (full - crop) % stride == 0 and crop <= full:
            crops = x.unfold(-1, crop, stride).permute(0, 2, 1, 3)
            return crops.reshape(-1, x.shape[1], crop), [crops.shape[1]] * x.shape[0]
        lengths = torch.full((x.shape[0],), full)
    starts = [crop_starts(n, crop, stride) for n in lengths.tolist()]
    pieces = [x[b, :, start : start + crop] for b, record in enumerate(starts) for start in record]
    return torch.stack(pieces), [len(record) for record in starts]


def aggregate_crops(logits: torch.Tensor, counts: list[int], how: str) -> torch.Tensor:
    """(N, classes) crop logits -> (B, classes): each record's crops averaged (``mean``) or their maximum (``max``)."""
    if len(set(counts)) == 1:
        per_record = logits.view(len(counts), counts[0], -1)
        return per_record.amax(dim=1) if how == "max" else per_record.mean(dim=1)
    parts = logits.split(counts)
    return torch.stack([part.amax(dim=0) if how == "max" else part.mean(dim=0) for part in parts])


class ClassifierModule(ClipWithoutScaler):
    """Encoder + head trained on a dataset's labels.

    Args:
        model: encoder model config (the ViT's :class:`ModelConfig` or a baseline's config, by its ``arch``).
        protocol: the ``protocol`` config group (see :class:`ProtocolConfig`).
        num_classes: number of outputs (classes; 1 for regression).
        kind: ``multilabel`` (sigmoid BCE), ``multiclass`` (softmax cross-entropy, e.g. ST-MEM) or
            ``regression`` (the head predicts the standardised target).
        target_mean, target_std: regression only: the training targets' mean and std; outputs are in target units.
        regression_loss: regression only: ``mse`` or ``l1`` on the standardised target.
        sampling_frequency: Hz of the model's input, to turn crop durations into samples.
        encoder_state: encoder weights to start from (None = random init).
        classifier_state: full classifier weights (LP-FT from a previous evaluation).
        inference_precision: validation and test logits in float32 ('32-true', as the original
            evaluates, whatever the training precision) or under bf16 autocast ('bf16-mixed': faster where
            the device computes bf16 natively; AUROCs no longer bit-comparable with the original's).
        method: the pre-training method of the encoder (``random init`` for none), recorded for reports and for
            runs that start from this one.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        protocol: Mapping[str, Any],
        num_classes: int,
        kind: str,
        sampling_frequency: int,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        regression_loss: str = "mse",
        encoder_state: Mapping[str, torch.Tensor] | None = None,
        classifier_state: Mapping[str, torch.Tensor] | None = None,
        source: str = "random init",
        inference_precision: str = "32-true",
        method: str = "jepa",
    ) -> None:
        super().__init__()
        check_inference_precision(inference_precision)
        self.task_kind = task_kind(kind, target_mean, target_std, regression_loss)
        self.save_hyperparameters(ignore=["encoder_state", "classifier_state"])
        self.protocol = ProtocolConfig.from_dict(protocol)
        p = self.protocol
        encoder = build_encoder(encoder_for_protocol(encoder_config(model), p))
        if encoder_state is not None:
            load_into(encoder, encoder_state, source)
        self.model = Classifier(encoder, num_classes, p.attn_pooling, p.use_register, p.bias, p.frozen, p.source_head)
        if classifier_state is not None:
            load_into(self.model, classifier_state, source)
        self.kind = kind
        self.inference_precision = inference_precision
        self.crop = None if p.crop_duration is None else round(p.crop_duration * sampling_frequency)
        self.stride = None if p.crop_stride is None else round(p.crop_stride * sampling_frequency)
        self._outputs: dict[str, list[torch.Tensor]] = {}
        self.results: dict[str, dict[str, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for whole records x (B, C, T), record b ``lengths[b]`` samples long (None: all ``T``; the rest is
        padding): the logits of the crops that fit in each record (:func:`crop_starts`), averaged
        (``aggregate=mean``) or their maximum (``max``: for sigmoid outputs the maximum probability, as helme's
        benchmark takes)."""
        if self.crop is None:
            return self.model(x)
        crops, counts = crop_batch(x, lengths, self.crop, self.stride)
        logits = self.model(crops).float()  # float32 under bf16 too
        return aggregate_crops(logits, counts, self.protocol.aggregate)

    def inference_logits(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Crop-averaged logits of whole records at the run's ``inference_precision`` (validation, test and
        ``ecgjepa-predict`` alike)."""
        # NOTE(parity): validation and test run in float32 even when training uses bf16 autocast, unless
        # inference_precision asks for bf16.
        bf16 = self.inference_precision == "bf16-mixed"
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self(x.float(), lengths)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.task_kind.loss(logits, targets)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities, or regression values in the target's units."""
        return self.task_kind.outputs(logits)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, targets = batch[:2]
        loss = self.loss(self.model(x), targets)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _collect(self, stage: str, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, targets, index = batch[:3]
        lengths = batch[3] if len(batch) > 3 else None  # the padded records' own lengths
        logits = self.inference_logits(x, lengths)
        self._outputs.setdefault(stage, []).append(
            torch.cat([index[:, None].float(), self.outputs(logits.float()), targets], dim=1).detach()
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

    @property
    def metric_name(self) -> str:
        """What model selection maximises: ``auroc`` (macro) or, for regression, ``r2``."""
        return self.task_kind.metric

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.task_kind.score(outputs, targets)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.log("val/loss", self._collect("val", batch), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        outputs, targets = self._gather("val")
        score = self.score(outputs, targets)
        self.log(f"val/{self.metric_name}", score, prog_bar=True)
        self.log("val/score", score)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(("val", "test")[dataloader_idx], batch)

    def on_test_epoch_end(self) -> None:
        for stage in ("val", "test"):
            if stage in self._outputs:
                outputs, targets = self._gather(stage)
                self.results[stage] = {"outputs": outputs.cpu(), "targets": targets.cpu()}
                self.log(f"test/{stage}_score" if stage == "val" else "test/score", self.score(outputs, targets))

    def decay_groups(self, modules: list[nn.Module]) -> list[dict[str, Any]]:
        p = self.protocol
        if p.decay_all_parameters:  # the baselines' sources decay every parameter, norms and biases included
            trained = [q for m in modules for q in m.parameters() if q.requires_grad]
            return [{"params": trained, "weight_decay": p.weight_decay}]
        return param_groups(modules, p.weight_decay)

    def optimiser_groups(self) -> list[dict[str, Any]]:
        """The parameter groups; with ``discriminative_lr_factor`` f, the encoder's layer groups (its
        ``layer_groups()``, input first, or the whole encoder) learn at lr x f, f^2, ... from the top down (the
        fine-tuning of hhi-aml/ecg-selfsupervised)."""
        p = self.protocol
        if p.discriminative_lr_factor == 1.0:
            return self.decay_groups([self.model])
        encoder = self.model.encoder
        layers = encoder.layer_groups() if hasattr(encoder, "layer_groups") else [encoder]
        groups = []
        for depth, layer in enumerate(reversed(layers), start=1):
            for group in self.decay_groups([layer]):
                groups.append({**group, "lr": p.learning_rate * p.discriminative_lr_factor**depth})
        groups += self.decay_groups([m for name, m in self.model.named_children() if name != "encoder"])
        return [group for group in groups if group["params"]]

    def configure_optimizers(self) -> dict[str, Any]:
        p = self.protocol
        optimizer = adamw(self.optimiser_groups(), p.learning_rate, p.opt_betas, p.opt_eps, p.fused)
        if p.schedule == "one_cycle":
            scheduler = one_cycle(optimizer, p)
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: p.lr_at(step) / p.learning_rate)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def one_cycle(optimizer: torch.optim.Optimizer, p: ProtocolConfig) -> torch.optim.lr_scheduler.OneCycleLR:
    """fastai's one-cycle policy with torch's scheduler: cosine warm-up from ``learning_rate / div_factor`` to
    ``learning_rate`` over ``warmup_fraction`` of the steps, cosine down to ``/ final_div_factor`` of the start,
    Adam's beta1 cycled inversely between ``min_momentum`` and ``max_momentum``."""
    c = p.one_cycle
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=p.steps,
        pct_start=c["warmup_fraction"],
        div_factor=c["div_factor"],
        final_div_factor=c["final_div_factor"],
        base_momentum=c["min_momentum"],
        max_momentum=c["max_momentum"],
    )


def encoder_for_protocol(config: EncoderConfig, p: ProtocolConfig) -> EncoderConfig:
    """The encoder config a protocol trains: the ViT with the protocol's dropout (it replaces the projection/MLP
    dropout only, as the original); a baseline, which has no dropout inside the network, refuses one."""
    if isinstance(config, ModelConfig):
        return dataclasses.replace(config, dropout=p.dropout, attn_dropout=0.0)
    if p.dropout:
        raise ValueError(f"protocol.dropout={p.dropout}: {config.name} has no dropout inside the network (set 0)")
    return config

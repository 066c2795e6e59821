"""Typed model configuration, filled from the Hydra ``model`` group (keys named as in ECG-JEPA)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

TOKENIZERS = ("patches", "lead_patches", "leads")
STANDARDISATIONS = ("dataset", "lead", "ecg")


def strict_fields(cls: type, cfg: Mapping[str, Any], section: str) -> dict[str, Any]:
    """``cfg`` as keyword arguments of dataclass ``cls``; an unknown key, or a missing one without a default,
    fails naming it and the section."""
    fields = dataclasses.fields(cls)
    known = {f.name for f in fields}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown {section} config key(s) {unknown}; valid keys: {sorted(known)}")
    required = {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(cfg))
    if missing:
        raise ValueError(f"{section}: missing config key(s) {missing}")
    return dict(cfg)


@dataclass(frozen=True)
class ModelConfig:
    """Encoder + predictor sizes and architecture (the values: conf/model/). ``channels`` (lead names) and
    ``channel_size`` (samples per lead of a full input) come from the data module's ``input_shape``, as do the
    input conventions a pre-training method sets (``sampling_frequency``, ``band_pass``, ``standardise``).

    ``tokenizer``: ``patches`` (one token per ``patch_size`` samples of all leads: ECG-JEPA, MTAE),
    ``lead_patches`` (one token per ``patch_size`` samples of one lead, with separator tokens around each lead:
    ST-MEM) or ``leads`` (one token per whole lead, ``patch_size`` = ``channel_size``: MLAE); see
    :mod:`ecgjepa.models.lead_vit`. ``crop_duration`` and ``crop_stride`` (seconds), where set, are the evaluation
    windows of the method's source, used unless the command line chooses others. The defaults after ``name``
    complete the model of a checkpoint written before these keys with ECG-JEPA's conventions, which ``method=jepa``
    keeps; the other conf/method options set them.
    """

    dim: int
    depth: int
    num_heads: int
    pred_dim: int
    pred_depth: int
    pred_num_heads: int
    patch_size: int
    channel_size: int
    channels: tuple[str, ...]
    mlp_ratio: float
    qkv_bias: bool
    bias: bool
    dropout: float
    attn_dropout: float
    num_registers: int
    norm_eps: float
    layer_scale_eps: float
    init: Literal["trunc_normal", "xavier_uniform"]
    name: str
    tokenizer: str = "patches"
    sampling_frequency: int = 500
    band_pass: tuple[float, float] | None = None
    standardise: str = "dataset"
    crop_duration: float | None = None
    crop_stride: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.band_pass is not None:
            object.__setattr__(self, "band_pass", tuple(self.band_pass))
            low, high = self.band_pass
            if not 0 <= low < high < self.sampling_frequency / 2:
                raise ValueError(
                    f"model.band_pass={list(self.band_pass)}: expected [low, high] Hz with 0 <= low < high < "
                    f"{self.sampling_frequency / 2} (half the sampling frequency)"
                )
        for key, value, choices in (
            ("tokenizer", self.tokenizer, TOKENIZERS),
            ("standardise", self.standardise, STANDARDISATIONS),
        ):
            if value not in choices:
                raise ValueError(f"model.{key}: expected one of {choices}, got {value!r}")
        if self.tokenizer == "leads" and self.patch_size != self.channel_size:
            raise ValueError(
                f"model.tokenizer=leads takes one token per whole lead: patch_size ({self.patch_size}) must equal "
                f"channel_size ({self.channel_size})"
            )
        if self.channel_size % self.patch_size:
            raise ValueError(
                f"model.channel_size={self.channel_size} must be a multiple of patch_size={self.patch_size}"
            )
        for key in ("dim", "depth", "num_heads", "pred_dim", "pred_depth", "pred_num_heads", "patch_size"):
            if getattr(self, key) <= 0:
                raise ValueError(f"model.{key} must be positive, got {getattr(self, key)}")
        if self.dim % self.num_heads or self.pred_dim % self.pred_num_heads:
            raise ValueError(
                f"model.dim={self.dim} / num_heads={self.num_heads} and pred_dim={self.pred_dim} / "
                f"pred_num_heads={self.pred_num_heads} must divide evenly"
            )

    @property
    def num_patches(self) -> int:
        return self.channel_size // self.patch_size

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ModelConfig:
        """Build from a (Hydra) mapping; unknown keys fail with a message naming them."""
        return cls(**strict_fields(cls, cfg, "model"))

    @property
    def fixed_length(self) -> bool:
        """The encoder takes inputs of exactly ``channel_size`` samples (one token per whole lead); the others
        take any multiple of ``patch_size`` up to it."""
        return self.tokenizer == "leads"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        if self.band_pass is not None:
            d["band_pass"] = list(self.band_pass)
        return d

"""Typed model configuration, filled from the Hydra ``model`` group (keys named as in ECG-JEPA)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ecgjepa.data.signal import CANONICAL_LEADS


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
    """Encoder + predictor sizes. ``channels``/``channel_size`` come from the data config."""

    dim: int
    depth: int
    num_heads: int
    pred_dim: int
    pred_depth: int
    pred_num_heads: int
    patch_size: int = 25
    channel_size: int = 5000  # samples per lead of a full input (10 s at 500 Hz)
    channels: tuple[str, ...] = field(default=CANONICAL_LEADS)
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    bias: bool = False
    dropout: float = 0.0
    attn_dropout: float = 0.0
    num_registers: int = 1
    norm_eps: float = 1e-6
    layer_scale_eps: float = 0.0
    init: Literal["trunc_normal", "xavier_uniform"] = "trunc_normal"
    name: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
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

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

"""Typed model configuration, filled from the Hydra ``model`` group (keys named as in ECG-JEPA)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


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
    ``channel_size`` (samples per lead of a full input) come from the data module's ``input_shape``."""

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

"""Speed work applied on top of the plain reference model (``ecgjepa.models``), at one point in each command.

The ``accel`` config group chooses it (``accel=auto``: the techniques below, precisions by what the device
computes natively; ``accel=none``: the reference model as written, in float32). Every technique changes how
fast a result is computed, not what is computed: tests/test_accel.py runs the same model with and without it.

- precision: bf16 autocast for training and evaluation forwards where the device has native bf16
  (:mod:`ecgjepa.accel.precision`), TF32 on CUDA unless ``float32_matmul_precision`` says otherwise;
- :class:`~ecgjepa.accel.attention.CPUBfloat16Attention`: bf16 attention on a CPU without float32 copies;
- :class:`~ecgjepa.accel.checkpointing.CheckpointedBlock`: activation checkpointing (memory for time);
- ``compile``: ``torch.compile`` of the encoders and the predictor.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ecgjepa.accel.attention import CPUBfloat16Attention
from ecgjepa.accel.capability import native_bf16
from ecgjepa.accel.checkpointing import MODES, CheckpointedBlock
from ecgjepa.accel.precision import resolve_precision, set_float32_precision
from ecgjepa.models.decoder import ReconstructionDecoder
from ecgjepa.models.layers import Attention, Block
from ecgjepa.models.lead_vit import LeadViT
from ecgjepa.models.predictor import Predictor
from ecgjepa.models.vit import VisionTransformer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accel:
    """The ``accel`` config group.

    Args:
        precision: training precision ('auto', '32-true', 'bf16-mixed', or any Lightning value).
        inference_precision: validation and test forwards of an evaluation ('auto', '32-true', 'bf16-mixed').
        float32_matmul_precision: 'highest', 'high' or 'medium' (TF32 / bf16 passes on GPUs); None = TF32 on
            CUDA, torch's default elsewhere.
        cpu_bf16_attention: bf16 attention on the CPU from plain bf16 products (see ``CPUBfloat16Attention``);
            'auto' = where the CPU computes bf16 natively (with emulated bf16 it is slower than the fused kernel).
        activation_checkpointing: 'none', 'selective' or 'full' for the trained transformer blocks.
        compile: ``torch.compile`` the encoders and the predictor (for GPUs).
    """

    precision: str
    inference_precision: str
    float32_matmul_precision: str | None
    cpu_bf16_attention: bool | str
    activation_checkpointing: str
    compile: bool

    def __post_init__(self) -> None:
        if self.cpu_bf16_attention not in (True, False, "auto"):
            raise ValueError(f"accel.cpu_bf16_attention: expected true, false or auto, got {self.cpu_bf16_attention!r}")
        if self.activation_checkpointing not in MODES:
            raise ValueError(
                f"accel.activation_checkpointing: expected one of {MODES}, got {self.activation_checkpointing!r}"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Accel:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown accel config key(s) {unknown}; valid keys: {sorted(known)}")
        return cls(**dict(cfg))

    def for_device(self, device: str) -> Accel:
        """This configuration with 'auto' precisions resolved for ``device``, and the process-wide float32
        matrix-product precision set."""
        set_float32_precision(self.float32_matmul_precision)
        attention = self.cpu_bf16_attention
        return dataclasses.replace(
            self,
            precision=resolve_precision(self.precision, device, "accel.precision"),
            inference_precision=resolve_precision(self.inference_precision, device, "accel.inference_precision"),
            cpu_bf16_attention=native_bf16("cpu")[0] if attention == "auto" else attention,
        )

    def apply(self, module: nn.Module) -> nn.Module:
        """Switch ``module``'s attention layers and blocks to their accelerated kinds, in place.

        Parameters, buffers and state-dict keys stay as they are; only the forward computation changes.
        """
        for sub in module.modules():
            if type(sub) is Attention and self.cpu_bf16_attention is True:
                sub.__class__ = CPUBfloat16Attention
            elif type(sub) is Block and self.activation_checkpointing != "none":
                sub.__class__ = CheckpointedBlock
                sub.mode = self.activation_checkpointing
        if self.compile:
            compile_submodules(module)
        return module


def compile_submodules(module: nn.Module) -> None:
    """Replace every encoder, predictor and decoder inside ``module`` by its ``torch.compile`` wrapper.

    Context lengths vary per batch (31..50 kept patches), so those graphs are marked dynamic up front, with
    inductor's memory-coalescing analysis off: it does not cover dynamic shapes (torch 2.11 asserted on CUDA).
    """
    dynamic = {"dynamic": True, "options": {"triton.coalesce_tiling_analysis": False}}
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (VisionTransformer, LeadViT, Predictor, ReconstructionDecoder)):
                grad_free = not any(p.requires_grad for p in child.parameters())
                setattr(parent, name, torch.compile(child) if grad_free else torch.compile(child, **dynamic))

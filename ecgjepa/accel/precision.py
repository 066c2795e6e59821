"""Arithmetic precision: bf16 autocast where the device runs it natively, TF32 or full float32 on GPUs."""

from __future__ import annotations

import logging

import torch

from ecgjepa.accel.capability import native_bf16

log = logging.getLogger(__name__)

FLOAT32_PRECISIONS = ("highest", "high", "medium")
PRECISIONS = ("auto", "32-true", "bf16-mixed")


def resolve_precision(value: str, device: str, key: str) -> str:
    """The precision that config ``key`` asks for on ``device``: explicit values as given; 'auto' is
    'bf16-mixed' where the device computes bf16 natively and '32-true' otherwise (logged with the reason).

    Lightning's other precision strings pass through unchanged for the trainer (``key`` 'trainer.precision').
    """
    value = str(value)
    if value != "auto":
        if key != "trainer.precision" and value not in PRECISIONS:
            raise ValueError(f"{key}: expected one of {PRECISIONS}, got {value!r}")
        return value
    native, why = native_bf16(device)
    chosen = "bf16-mixed" if native else "32-true"
    log.info("%s=auto -> %s on %s: %s", key, chosen, device, why)
    return chosen


def set_float32_precision(value: str | None) -> None:
    """Apply ``float32_matmul_precision``: 'highest' computes float32 in full precision, 'high' and 'medium'
    allow TF32 (and bf16 passes for 'medium') on GPUs. It also sets cuDNN's TF32 switch, which
    ``torch.set_float32_matmul_precision`` leaves alone, so that 'highest' covers the patch-embedding
    convolution too. None: TF32 on CUDA (as the original's scripts set), torch's defaults elsewhere."""
    if value is None:
        if not torch.cuda.is_available():
            return
        value = "high"
    if value not in FLOAT32_PRECISIONS:
        raise ValueError(f"float32_matmul_precision: expected one of {FLOAT32_PRECISIONS} or null, got {value!r}")
    torch.set_float32_matmul_precision(value)
    torch.backends.cudnn.allow_tf32 = value != "highest"

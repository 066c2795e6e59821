"""Float32 arithmetic on the GPU: TF32 or full precision, for matrix products and cuDNN convolutions alike."""

from __future__ import annotations

import torch

FLOAT32_PRECISIONS = ("highest", "high", "medium")


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

"""What the device can do, as torch reports it (no vendor names)."""

from __future__ import annotations

import functools

import torch


def device_type(accelerator: str | None) -> str:
    """The torch device type a Lightning ``accelerator`` value trains on: 'cuda', 'mps' or 'cpu'."""
    value = str(accelerator or "auto").lower()
    if value in ("gpu", "cuda") or (value == "auto" and torch.cuda.is_available()):
        return "cuda"
    if value == "mps" or (value == "auto" and torch.backends.mps.is_available()):
        return "mps"
    return "cpu"


@functools.cache
def native_bf16(device: str) -> tuple[bool, str]:
    """Whether ``device`` ('cpu', 'cuda', 'mps') computes bf16 products natively, and why (for the log).

    On a CPU that needs AVX512-BF16 or AMX instructions: without them torch emulates bf16 products
    in float32 and converts, several times slower than float32 itself.
    """
    if device == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device is available"
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{name} supports bf16 natively"
        return False, f"{name} has no native bf16"
    if device == "cpu":
        features = [
            label
            for label, present in (
                ("AMX", torch.cpu._is_amx_tile_supported()),
                ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported()),
            )
            if present
        ]
        if features:
            return True, f"the CPU has {' and '.join(features)}"
        capability = torch.backends.cpu.get_cpu_capability()
        return False, f"the CPU has neither AMX nor AVX512-BF16 (torch reports {capability})"
    return False, f"bf16 autocast is not chosen automatically on {device}"

"""Access-time transforms (pure numpy): per-lead normalisation and crops."""

from __future__ import annotations

import numpy as np


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Per-lead z-score then clip to ``[-clip, clip]``. x: (T, 12); mean/std: (12,).

    NOTE(parity): when ``x``, ``mean`` and ``std`` are float16 the arithmetic runs in float16, as in
    the original pre-training path; the result is then bit-identical to its inputs.
    """
    return np.clip((x - mean) / std, -clip, clip)


def strided_crop_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of all crops of ``crop`` samples with ``stride`` that fit in ``length``."""
    if crop > length:
        raise ValueError(f"crop of {crop} samples is longer than the record ({length} samples)")
    return list(range(0, length - crop + 1, stride))

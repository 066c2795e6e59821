"""Access-time transforms: per-lead normalisation and crops."""

from __future__ import annotations

import numpy as np
import torch


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Per-lead z-score then clip to ``[-clip, clip]``. x: (..., T, 12); mean/std broadcastable, e.g. (12,).

    NOTE(parity): with float16 ``x``, ``mean`` and ``std`` the arithmetic runs in float16, as in the
    original pre-training path (bit-identical to numpy's float16 arithmetic; torch's CPU kernels are
    ~6x faster than numpy's emulated float16).
    """
    out = (torch.from_numpy(np.asarray(x)) - torch.from_numpy(np.asarray(mean))) / torch.from_numpy(np.asarray(std))
    return out.clamp_(-clip, clip).numpy()

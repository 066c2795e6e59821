"""The one per-lead normalisation of ECG signals, used by pre-training, evaluation, prediction, ``ecgjepa-embed``
and the README's example."""

from __future__ import annotations

import numpy as np
import torch


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Per-lead z-score, then clip to ``[-clip, clip]``; ``mean``/``std`` broadcast against ``x`` (e.g. (12,) for
    time-major (..., T, 12) signals). The arithmetic runs in the dtype of the inputs (numpy's promotion rules).

    NOTE(parity): pre-training passes float16 signals and constants, so the arithmetic runs in float16 as in the
    original (bit-identical to numpy's float16 arithmetic; torch's CPU kernels are ~6x faster than numpy's
    emulated float16); evaluation runs it in float32.
    """
    out = (torch.from_numpy(np.asarray(x)) - torch.from_numpy(np.asarray(mean))) / torch.from_numpy(np.asarray(std))
    return out.clamp_(-clip, clip).numpy()

"""The one per-lead normalisation of ECG signals, used by pre-training, evaluation, prediction, ``ecgjepa-embed``
and the README's example, and the input conditioning some methods add to it (:class:`Conditioning`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Per-lead z-score, then clip to ``[-clip, clip]``; ``mean``/``std`` broadcast against ``x`` (e.g. (12,) for
    time-major (..., T, 12) signals). The arithmetic runs in the dtype of the inputs (numpy's promotion rules).

    NOTE(parity): pre-training passes float16 signals and constants, so the arithmetic runs in float16 as in the
    original (bit-identical to numpy's float16 arithmetic; torch's CPU kernels are ~6x faster than numpy's
    emulated float16); evaluation runs it in float32.
    """
    out = (torch.from_numpy(np.asarray(x)) - torch.from_numpy(np.asarray(mean))) / torch.from_numpy(np.asarray(std))
    return out.clamp_(-clip, clip).numpy()


@dataclass(frozen=True)
class Conditioning:
    """What a method asks of its input after the per-lead normalisation and the resampling to its rate (the
    encoder's ``band_pass`` and ``standardise``; ST-MEM's 0.67-40 Hz band and whole-ECG standardisation).

    ``band_pass``: [low, high] Hz, a zero-phase 4th-order Butterworth band-pass (``scipy.signal.sosfiltfilt``) of
    each input (a crop in pre-training, a whole record in evaluation and prediction). ``standardise``: ``'ecg'``
    shifts and scales each input by the mean and std of all its samples, every lead together (ST-MEM's, which keeps
    the leads' amplitude ratios); ``'lead'`` each lead by its own; ``'dataset'`` nothing more. A flat input stays 0.
    """

    band_pass: tuple[float, float] | None = None
    standardise: str = "dataset"

    @property
    def active(self) -> bool:
        return self.band_pass is not None or self.standardise != "dataset"

    def __call__(self, x: np.ndarray, fs: float) -> np.ndarray:
        """(..., leads, samples) at ``fs`` Hz -> the same shape, float32."""
        if self.band_pass is not None:
            sos = butter(4, list(self.band_pass), btype="bandpass", fs=fs, output="sos")
            x = sosfiltfilt(sos, x, axis=-1)
        if self.standardise != "dataset":
            axes = (-2, -1) if self.standardise == "ecg" else -1
            mean, std = x.mean(axis=axes, keepdims=True), x.std(axis=axes, keepdims=True)
            x = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1), 0.0)
        return np.ascontiguousarray(x, dtype=np.float32)

"""Pure numpy/scipy signal functions shared by `data_prep` and the datasets.

Mirrors ECG-JEPA `data/transforms.py` (NaN interpolation, high-pass filter, FFT resampling). Arrays are
time-major: `x: (samples, leads)`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal as sps


def interpolate_nans(x: np.ndarray) -> np.ndarray:
    """Replace NaNs per lead by linear interpolation over the sample index.

    NaNs before the first / after the last valid sample take the nearest valid value. Leads without
    NaNs are untouched; without any NaN the input itself is returned, otherwise a copy.

    Args:
        x: (samples, leads) floating array.
    """
    nan_mask = np.isnan(x)
    if not nan_mask.any():
        return x
    out = x.copy()
    for lead in np.flatnonzero(nan_mask.any(axis=0)):
        nans = nan_mask[:, lead]
        if nans.all():
            raise ValueError(f"lead {lead} is entirely NaN")
        valid = np.flatnonzero(~nans)
        out[nans, lead] = np.interp(np.flatnonzero(nans), valid, x[valid, lead])
    return out


def remove_baseline_wander(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase Butterworth high-pass (order 4, 0.5 Hz) along time, designed at `fs`.

    Applied with `scipy.signal.filtfilt` (default padding); the result has the dtype of `x`.

    Args:
        x: (samples, leads) floating array without NaNs.
        fs: sampling rate of `x` in Hz.
    """
    b, a = sps.butter(4, 0.5, btype="highpass", fs=fs)
    return sps.filtfilt(b, a, x, axis=0).astype(x.dtype, copy=False)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """FFT-resample `x` from `fs_in` to `fs_out` Hz (`scipy.signal.resample`).

    The new length is `int(len(x) * fs_out / fs_in)`; computed in float64, returned in the dtype of
    `x`. Equal rates return `x` unchanged.

    Args:
        x: (samples, leads) array.
    """
    for name, rate in (("fs_in", fs_in), ("fs_out", fs_out)):
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"{name} must be a positive finite sampling rate, got {rate!r}")
    if fs_in == fs_out:
        return x
    num = int(x.shape[0] * fs_out / fs_in)
    if num < 1:
        raise ValueError(f"resampling {x.shape[0]} samples from {fs_in} Hz to {fs_out} Hz leaves {num} samples")
    return sps.resample(x.astype(np.float64), num, axis=0).astype(x.dtype, copy=False)

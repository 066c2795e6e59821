"""Tests of `ecgjepa.data.signal`: lead permutation, NaN interpolation, high-pass, FFT resampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from ecgjepa.core.leads import CANONICAL_LEADS, lead_permutation
from ecgjepa.core.signal import interpolate_nans, remove_baseline_wander, resample

MIMIC_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")


def test_lead_permutation_identity_is_case_insensitive():
    assert lead_permutation([name.lower() for name in CANONICAL_LEADS]).tolist() == list(range(12))


def test_lead_permutation_reorders_mimic_by_name():
    x = np.tile(np.arange(12), (3, 1))  # column j holds j, i.e. the native position
    reordered = x[:, lead_permutation(MIMIC_ORDER)]
    assert [MIMIC_ORDER[j] for j in reordered[0]] == list(MIMIC_ORDER[:4]) + ["aVL", "aVF"] + list(MIMIC_ORDER[6:])
    assert [MIMIC_ORDER[j].upper() for j in reordered[0]] == list(CANONICAL_LEADS)


@pytest.mark.parametrize(
    ("leads", "message"),
    [
        (CANONICAL_LEADS[:11], r"missing leads \['V6'\]"),
        ((*CANONICAL_LEADS[:11], "X"), r"unknown leads \['X'\]"),
        ((*CANONICAL_LEADS[:11], "v5"), r"duplicated leads \['v5'\]"),
    ],
)
def test_lead_permutation_errors_name_the_leads(leads, message):
    with pytest.raises(ValueError, match=message):
        lead_permutation(leads)


def test_interpolate_nans_linear_and_constant_ends():
    x = np.zeros((6, 3), dtype=np.float16)
    x[:, 0] = [np.nan, 1, np.nan, 3, 4, np.nan]
    x[:, 1] = [5, 6, 7, 8, 9, 10]
    x[:, 2] = [np.nan, np.nan, 2, np.nan, np.nan, 8]
    out = interpolate_nans(x)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out[:, 0], [1, 1, 2, 3, 4, 4])
    np.testing.assert_array_equal(out[:, 1], x[:, 1])
    np.testing.assert_array_equal(out[:, 2], [2, 2, 2, 4, 6, 8])
    assert np.isnan(x[0, 0]), "the input is not modified"


def test_interpolate_nans_without_nans_returns_input():
    x = np.random.default_rng(0).standard_normal((50, 12)).astype(np.float16)
    assert interpolate_nans(x) is x


def test_interpolate_nans_all_nan_lead_raises():
    x = np.ones((10, 12))
    x[:, 4] = np.nan
    with pytest.raises(ValueError, match="lead 4 is entirely NaN"):
        interpolate_nans(x)


def test_remove_baseline_wander_removes_slow_keeps_fast():
    fs = 400
    t = np.arange(20 * fs) / fs
    slow, fast = np.sin(2 * np.pi * 0.1 * t), 0.5 * np.sin(2 * np.pi * 10 * t)
    x = np.stack([slow + fast, fast], axis=1).astype(np.float16)
    out = remove_baseline_wander(x, fs)
    assert out.dtype == np.float16
    assert out.shape == x.shape
    middle = slice(2 * fs, -2 * fs)  # away from the filtfilt edges
    np.testing.assert_allclose(out[middle, 0], fast[middle], atol=0.02)
    np.testing.assert_allclose(out[middle, 1], fast[middle], atol=0.01)


def test_remove_baseline_wander_is_scipy_filtfilt():
    x = np.random.default_rng(1).standard_normal((1000, 12)).astype(np.float16)
    b, a = sps.butter(4, 0.5, btype="highpass", fs=257)
    np.testing.assert_array_equal(remove_baseline_wander(x, 257), sps.filtfilt(b, a, x, axis=0).astype(np.float16))


@pytest.mark.parametrize(
    ("length", "fs_in", "expected"),
    [(4096, 400, 5120), (38400, 1000, 19200), (1000, 100, 5000), (462600, 257, 900000), (7, 1000, 3)],
)
def test_resample_lengths(length, fs_in, expected):
    x = np.zeros((length, 2), dtype=np.float16)
    out = resample(x, fs_in, 500)
    assert out.shape == (expected, 2)
    assert out.dtype == np.float16


def test_resample_is_scipy_fft_in_float64():
    x = np.random.default_rng(2).standard_normal((1000, 12)).astype(np.float16)
    expected = sps.resample(x.astype(np.float64), 5000, axis=0).astype(np.float16)
    np.testing.assert_array_equal(resample(x, 100, 500), expected)


def test_resample_same_rate_is_identity():
    x = np.ones((10, 12), dtype=np.float16)
    assert resample(x, 500, 500) is x


@pytest.mark.parametrize("fs_in", [0, -100, float("nan"), float("inf")])
def test_resample_rejects_bad_rates(fs_in):
    with pytest.raises(ValueError, match="fs_in must be a positive finite sampling rate"):
        resample(np.ones((10, 12)), fs_in, 500)


def test_resample_rejects_empty_result():
    with pytest.raises(ValueError, match="leaves 0 samples"):
        resample(np.ones((1, 12)), 1000, 500)

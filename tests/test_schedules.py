"""Schedules at the original's checkpoints (ECG-JEPA utils/schedules.py) and the EMA momentum ramp (models/JEPA.py)."""

from __future__ import annotations

import pytest

from ecgjepa.callbacks import TargetMomentumUpdate, WeightDecaySchedule
from ecgjepa.optim import OptimConfig
from ecgjepa.schedules import warmup_cosine
from ecgjepa.utils.hydra import load_group_option

PAPER = OptimConfig.from_dict(load_group_option("optim", "paper"))


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 1e-6), (5_000, 5.005e-4), (10_000, 1e-3), (55_000, 5.005e-4), (99_999, 1e-6), (150_000, 1e-6)],
)
def test_learning_rate(step: int, expected: float) -> None:
    assert PAPER.lr_at(step) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(("step", "expected"), [(0, 0.01), (50_000, 0.055), (99_999, 0.1)])
def test_weight_decay_rises(step: int, expected: float) -> None:
    assert WeightDecaySchedule(0.01, 0.1, 100_000).value(step) == pytest.approx(expected, rel=1e-3)


def test_momentum_endpoints_and_golden_values() -> None:
    ema = TargetMomentumUpdate(0.998, 0.9995, 100_000, "optimizer_step", "linear")
    assert ema.momentum(0) == 0.998
    assert ema.momentum(50_000) == pytest.approx(0.99875)
    assert ema.momentum(100_000) == ema.momentum(10**6) == 0.9995
    assert ema.momentum(3) == pytest.approx(0.998000045, abs=1e-12)  # golden next_step_momentum


def test_golden_training_schedule_values() -> None:
    """The original's first steps: lr 1e-6, 1.0999e-6, 1.1998e-6, 1.2997e-6 (ViTXS_ptbxl)."""
    for step, lr in enumerate([1e-6, 1.0999e-6, 1.1998e-6, 1.2997e-6]):
        assert PAPER.lr_at(step) == pytest.approx(lr, rel=1e-12)
    assert warmup_cosine(3, 0.01, 0.01, 0.1, 0, 100_000) == pytest.approx(0.010000000199863482, rel=1e-12)


def test_cosine_momentum_of_byol() -> None:
    """BYOL's tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2: 0.996 at the start, halfway at K/2, 1 at K."""
    ema = TargetMomentumUpdate(0.996, 1.0, 1_000, "optimizer_step", "cosine")
    assert ema.momentum(0) == pytest.approx(0.996)
    assert ema.momentum(500) == pytest.approx(0.998)
    assert ema.momentum(250) == pytest.approx(1 - 0.004 * (0.5**0.5 + 1) / 2)
    assert ema.momentum(1_000) == ema.momentum(5_000) == 1.0


def test_an_unknown_momentum_schedule_is_named() -> None:
    with pytest.raises(ValueError, match="schedule must be one of"):
        TargetMomentumUpdate(0.996, 1.0, 10, "optimizer_step", "step")

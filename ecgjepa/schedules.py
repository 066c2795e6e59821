"""Schedules as pure functions of the step (ECG-JEPA utils/schedules.py), so a resumed run needs no schedule state."""

from __future__ import annotations

import math

WARMUP_START_LR = 1e-6  # NOTE(parity): the original warms up from 1e-6, not from 0.


def warmup_cosine(step: int, start: float, peak: float, final: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from ``start`` to ``peak`` over ``warmup_steps``, then cosine to ``final``.

    NOTE(parity): the cosine denominator is ``total - warmup - 1`` so ``final`` is reached at step
    ``total - 1``; past ``total`` the value stays at ``final``.
    """
    if step < warmup_steps:
        return start + (peak - start) * step / warmup_steps
    if step > total_steps:
        return final
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps - 1)
    return final + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - final)


def linear(step: int, start: float, final: float, total_steps: int) -> float:
    """Linear ramp from ``start`` to ``final`` over ``total_steps``, constant afterwards."""
    if step >= total_steps:
        return final
    return start + (final - start) * step / total_steps


def cosine_ramp(step: int, start: float, final: float, total_steps: int) -> float:
    """Half a cosine from ``start`` to ``final`` over ``total_steps``, constant afterwards (BYOL's and MoCo v3's
    momentum: 1 - (1 - start) * (cos(pi * step / total) + 1) / 2 for ``final`` = 1)."""
    if step >= total_steps:
        return final
    return final - (final - start) * (math.cos(math.pi * step / total_steps) + 1) / 2


def learning_rate(step: int, peak: float, final: float, warmup_steps: int, total_steps: int) -> float:
    """The original's learning-rate schedule: warm-up from 1e-6 to ``peak``, cosine to ``final``."""
    return warmup_cosine(step, WARMUP_START_LR, peak, final, warmup_steps, total_steps)

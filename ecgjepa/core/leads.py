"""The twelve standard lead names, their order in every dump and model input, and matching by name."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CANONICAL_LEADS: tuple[str, ...] = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")


def lead_key(name: str) -> str:
    """How lead names compare: case and surrounding blanks do not count (``aVF`` == ``AVF``)."""
    return name.strip().casefold()


def unknown_leads(names: Sequence[str]) -> list[str]:
    """The names in ``names`` that are none of the twelve standard leads."""
    known = {lead_key(lead) for lead in CANONICAL_LEADS}
    return [name for name in names if lead_key(name) not in known]


def lead_permutation(native_leads: Sequence[str], target: Sequence[str] = CANONICAL_LEADS) -> np.ndarray:
    """Indices `perm` such that `x[:, perm]` puts the leads of `x` in `target` order.

    Names are matched by :func:`lead_key`. Raises `ValueError` naming the missing, unknown or duplicated leads.
    """
    native = [lead_key(name) for name in native_leads]
    wanted = [lead_key(name) for name in target]
    duplicated = sorted({name for name in native if native.count(name) > 1})
    missing = [name for name in target if lead_key(name) not in native]
    unknown = [name for name in native_leads if lead_key(name) not in wanted]
    if duplicated or missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing leads {missing}")
        if unknown:
            problems.append(f"unknown leads {unknown}")
        if duplicated:
            problems.append(f"duplicated leads {duplicated}")
        raise ValueError(f"cannot map leads {list(native_leads)} to {list(target)}: {'; '.join(problems)}")
    return np.array([native.index(name) for name in wanted], dtype=np.intp)

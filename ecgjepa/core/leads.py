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


LEAD_SETS_HELP = "a list of lead names such as [I], [I,II], [I,II,III,AVR,AVL,AVF] or [I,II,V1,V2,V3,V4,V5,V6]"


def lead_subset(names: Sequence[str] | str | None, key: str = "leads") -> tuple[str, ...]:
    """The leads of a ``leads=`` value in canonical order (every lead for None); ValueError naming ``key`` and the
    unknown or repeated names otherwise. ``"I,II"`` and ``["I", "II"]`` are the same subset."""
    if names is None:
        return CANONICAL_LEADS
    if isinstance(names, str):
        names = [name for name in names.strip("[]").split(",") if name.strip()]
    keys = [lead_key(str(name)) for name in names]
    unknown = unknown_leads([str(name) for name in names])
    repeated = sorted({name for name in keys if keys.count(name) > 1})
    if unknown or repeated or not keys:
        problem = f"unknown {unknown}" if unknown else f"repeated {repeated}" if repeated else "no lead"
        raise ValueError(f"{key}: {problem}; expected {LEAD_SETS_HELP} (any of {list(CANONICAL_LEADS)})")
    return tuple(lead for lead in CANONICAL_LEADS if lead_key(lead) in keys)


def lead_mask(subset: Sequence[str]) -> np.ndarray:
    """(12,) float32: 1 for the canonical leads in ``subset``, 0 for the others (zeroed after normalisation)."""
    keys = {lead_key(name) for name in subset}
    return np.array([lead_key(lead) in keys for lead in CANONICAL_LEADS], dtype=np.float32)


def lead_columns(native_leads: Sequence[str], required: Sequence[str] = CANONICAL_LEADS) -> np.ndarray:
    """For each canonical lead, its column among ``native_leads``, or -1 where it is absent and not ``required``.

    Raises `ValueError` naming the required leads a record lacks (and how to let it through), or its unknown or
    duplicated leads.
    """
    native = [lead_key(name) for name in native_leads]
    required_keys = {lead_key(name) for name in required}
    subset = len(required_keys) < len(CANONICAL_LEADS)
    absent = [lead for lead in CANONICAL_LEADS if lead_key(lead) not in native]
    missing = [lead for lead in absent if lead_key(lead) in required_keys]
    unknown = unknown_leads(native_leads)
    duplicated = sorted({name for name in native if native.count(name) > 1})
    if missing or unknown or duplicated:
        problems = [f"missing leads {missing}" + (f" of leads={list(required)}" if subset else "")] if missing else []
        problems += [f"unknown leads {unknown}"] if unknown else []
        problems += [f"duplicated leads {duplicated}"] if duplicated else []
        hint = ""
        if missing and not (subset or unknown or duplicated):
            held = ",".join(lead for lead in CANONICAL_LEADS if lead not in absent)
            hint = f"; to use records of fewer leads, pass leads=[{held}] or another subset of the leads it holds"
        raise ValueError(f"{'; '.join(problems)} (the record holds {list(native_leads)}){hint}")
    present = [lead for lead in CANONICAL_LEADS if lead not in absent]
    columns = np.full(len(CANONICAL_LEADS), -1, dtype=np.intp)
    columns[[CANONICAL_LEADS.index(lead) for lead in present]] = lead_permutation(native_leads, present)
    return columns

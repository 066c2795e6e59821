"""Random token masks of the masked-reconstruction methods (ST-MEM, MTAE, MLAE) and random lead masking.

Tokens are laid out as ``groups x per_group`` (see the encoders' ``token_layout``): token ``g * per_group + i``.
A mask is the sorted indices of the tokens the encoder sees (``keep_idx``) and of those it must reconstruct
(``mask_idx``). Draws come from a ``torch.Generator`` the caller seeds, so a step's masks are a pure function of
its seed.
"""

from __future__ import annotations

import torch

STRUCTURES = ("within_groups", "whole_groups")


def kept_count(total: int, mask_ratio: float) -> int:
    """How many of ``total`` tokens stay visible at ``mask_ratio``: ``int(total * (1 - mask_ratio))`` as ST-MEM
    counts them (7 of 30 at 0.75), at least one, and at least one hidden."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if total < 2:
        raise ValueError(f"cannot mask a part of {total} token(s)")
    return min(total - 1, max(1, int(total * (1 - mask_ratio) + 1e-9)))


def token_masks(
    batch: int,
    groups: int,
    per_group: int,
    mask_ratio: float,
    structure: str,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep_idx (B, K), mask_idx (B, M)), sorted, drawn independently per sample.

    ``within_groups``: the same number of tokens is masked in every group, chosen independently per group (ST-MEM
    masks each lead's patches on its own; with one group, MTAE's time patches). ``whole_groups``: whole groups are
    masked (MLAE masks whole leads).
    """
    if structure == "within_groups":
        keep = kept_count(per_group, mask_ratio)
        order = torch.rand(batch, groups, per_group, generator=generator).argsort(dim=-1)
        offsets = torch.arange(groups)[None, :, None] * per_group
        keep_idx = (order[..., :keep] + offsets).flatten(1)
        mask_idx = (order[..., keep:] + offsets).flatten(1)
    elif structure == "whole_groups":
        keep = kept_count(groups, mask_ratio)
        order = torch.rand(batch, groups, generator=generator).argsort(dim=-1)
        within = torch.arange(per_group)
        keep_idx = (order[:, :keep, None] * per_group + within).flatten(1)
        mask_idx = (order[:, keep:, None] * per_group + within).flatten(1)
    else:
        raise ValueError(f"mask structure: expected one of {STRUCTURES}, got {structure!r}")
    return keep_idx.sort(dim=1).values, mask_idx.sort(dim=1).values


def random_lead_mask(batch: int, leads: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    """(B, leads) float: 0 for a lead dropped from the input (each with ``probability``), 1 otherwise; a sample
    whose draw drops every lead keeps them all."""
    if not 0 <= probability < 1:
        raise ValueError(f"random_lead_masking must be in [0, 1), got {probability}")
    keep = torch.rand(batch, leads, generator=generator) >= probability
    keep[~keep.any(dim=1)] = True
    return keep.float()

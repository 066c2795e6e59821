"""The block masks of the timed steps, shared by our steps (bench.py) and the original's (original.py)."""

from __future__ import annotations

import itertools

import torch

from ecgjepa.data.masks import BlockMaskSampler


def mask_pool(batch: int, patch_size: int, min_block: int, device: torch.device, size: int = 8) -> itertools.cycle:
    """``size`` batches of (keep_idx, pred_idx) on ``device``, cycled: the masks of the timed steps (the
    loader's work in training, so kept out of the step). Each entry is drawn with the mask sampler's
    ``rng_for(i)``, so ours and the original's steps see the same context lengths."""
    masks = BlockMaskSampler(patch_size, min_block, 0.15, 0.25)
    masks = [masks.sample(batch, 200, masks.rng_for(i)) for i in range(size)]
    return itertools.cycle([(keep.to(device), pred.to(device)) for keep, pred in masks])

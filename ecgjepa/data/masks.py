"""Block masking for ECG-JEPA (ECG-JEPA ``data/masks.py``).

A mask is a set of *time* patches shared by all leads. One keep ratio is drawn per batch; masked
blocks of at least ``min_block_size`` patches are carved out of the unmasked intervals, each interval
chosen with probability proportional to its length. The target (predictor) indices are the
complement of the context (encoder) indices.

The random calls (``uniform`` once per batch, then per sample ``choice(p=...)``, ``randint``,
``randint``/``choice``) follow the original's order, so a ``np.random.RandomState`` seeded like the
original's global RNG reproduces its masks bit for bit.
"""

from __future__ import annotations

import bisect
import itertools
import math

import numpy as np
import torch


def _choose_proportional(sizes: list[int], rng: np.random.RandomState) -> int:
    """``rng.choice(len(sizes), p=sizes / sum(sizes))`` with the same draw and the same float64 arithmetic
    (p, its running sum normalised by the last entry, then a right-sided search), minus numpy's per-call
    overhead on these 1-5 element arrays: the mask sampler runs 2x faster and stays bit-exact."""
    total = float(sum(sizes))
    cdf = list(itertools.accumulate(size / total for size in sizes))
    return bisect.bisect_right([c / cdf[-1] for c in cdf], rng.random_sample())


def sample_block_mask(num_patches: int, num_keep: int, min_block_size: int, rng: np.random.RandomState) -> np.ndarray:
    """Return a boolean array of ``num_patches`` where True marks a context (kept) patch."""
    num_mask = num_patches - num_keep
    intervals: list[tuple[int, int]] = [(0, num_patches)]
    masked = 0
    while masked < num_mask:
        start, end = intervals.pop(_choose_proportional([end - start for start, end in intervals], rng))
        remaining = num_mask - masked
        block = rng.randint(min_block_size, remaining + 1) if remaining >= min_block_size else remaining
        if end - start <= block:
            masked += end - start
            continue
        if remaining >= min_block_size:
            split = rng.randint(start, end - block + 1)
        else:
            # A leftover smaller than the minimum block is glued to an existing masked region.
            options = ([start] if start > 0 else []) + ([end - block] if end < num_patches else [])
            split = rng.choice(options)
        intervals += [(start, split), (split + block, end)]
        masked += block
    keep = np.zeros(num_patches, dtype=bool)
    for start, end in intervals:
        keep[start:end] = True
    return keep


class BlockMaskSampler:
    """Collate ``(C, T)`` signals into ``(signals, keep_idx, pred_idx)``.

    Args:
        patch_size: samples per patch (25).
        min_block_size: minimum masked block length in patches (10).
        min_keep_ratio, max_keep_ratio: bounds of the per-batch context ratio (0.15, 0.25).
        seed: base seed; batch ``i`` draws from ``SeedSequence([seed, rank, worker, i])`` (:meth:`rng_for`), so
            runs are reproducible while ranks and loader workers draw different masks.
        rank: distributed rank mixed into the seed.
    """

    def __init__(
        self,
        patch_size: int,
        min_block_size: int,
        min_keep_ratio: float,
        max_keep_ratio: float,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        if not 0 < min_keep_ratio <= max_keep_ratio < 1:
            raise ValueError(f"need 0 < min_keep_ratio <= max_keep_ratio < 1, got {min_keep_ratio}, {max_keep_ratio}")
        self.patch_size = patch_size
        self.min_block_size = min_block_size
        self.min_keep_ratio = min_keep_ratio
        self.max_keep_ratio = max_keep_ratio
        self.seed = seed
        self.rank = rank

    def sample(
        self, batch_size: int, num_patches: int, rng: np.random.RandomState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw one batch of masks: (keep_idx (B, K), pred_idx (B, N - K)), int64, sorted."""
        keep_ratio = rng.uniform(self.min_keep_ratio, self.max_keep_ratio)
        num_keep = math.ceil(keep_ratio * num_patches)
        keep = np.stack([sample_block_mask(num_patches, num_keep, self.min_block_size, rng) for _ in range(batch_size)])
        positions = np.arange(num_patches)
        keep_idx = np.broadcast_to(positions, keep.shape)[keep].reshape(batch_size, num_keep)
        pred_idx = np.broadcast_to(positions, keep.shape)[~keep].reshape(batch_size, num_patches - num_keep)
        return torch.from_numpy(keep_idx.copy()), torch.from_numpy(pred_idx.copy())

    def rng_for(self, batch_index: int, worker: int = 0) -> np.random.RandomState:
        """The generator used for a given batch index (a pure function of seed, rank and index)."""
        state = np.random.SeedSequence([self.seed, self.rank, worker, batch_index]).generate_state(1)
        return np.random.RandomState(int(state[0]))

"""The losses of the contrastive and predictive-coding methods, with negatives gathered across processes.

Each loss is a plain function of tensors (tested against hand computations in ``tests/test_contrastive.py``),
computed in float32 outside any autocast. Under DDP, :func:`gather` concatenates every process's rows in rank order
with gradients flowing back to their owners, so the mean of the per-process losses of B samples each equals the
one-process loss of the whole global batch (SimCLR, MoCo v3, CMSC).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.nn.functional import all_gather

Loss = TypeVar("Loss", bound=Callable)


def in_float32(loss: Loss) -> Loss:
    """Run ``loss`` with autocast off (its inputs are cast to float32 inside), on the CPU and CUDA alike."""

    @functools.wraps(loss)
    def wrapper(*args: object, **kwargs: object) -> object:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return loss(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def world() -> tuple[int, int]:
    """(rank, world size) of this process (0, 1 outside distributed training)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(x: torch.Tensor) -> torch.Tensor:
    """Rows of every process in rank order (differentiable); ``x`` itself in one process."""
    _, size = world()
    return torch.cat(all_gather(x), dim=0) if size > 1 else x


def same_group(groups: torch.Tensor) -> torch.Tensor:
    """(N, N) bool over the global batch: whether two samples share a group (CMSC: a patient), from each process's
    (B,) group keys gathered in rank order."""
    every = gather(groups)
    return every[:, None] == every[None, :]


@in_float32
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2N views must pick its partner among the other 2N - 1 views of the global
    batch, by cosine similarity / ``temperature``; the mean over this process's 2B views."""
    rank, _ = world()
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    every = F.normalize(torch.cat([gather(z1), gather(z2)]).float(), dim=1)  # (2N, D): all views 1, then all views 2
    b, n = z1.shape[0], every.shape[0] // 2
    rows = torch.cat([torch.arange(b), torch.arange(b) + n]) + rank * b  # this process's views among all
    itself = torch.arange(2 * n, device=z.device)[None, :] == rows.to(z.device)[:, None]
    logits = (z @ every.T / temperature).masked_fill(itself, float("-inf"))  # a view is not its own negative
    partners = torch.cat([rows[b:], rows[:b]])
    return F.cross_entropy(logits, partners.to(z.device))


@in_float32
def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The mean over the batch of -cos(p, z), z detached (BYOL's target)."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()


@in_float32
def info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo v3's contrastive loss: each query picks its own key among the keys of the global batch (the momentum
    encoder's, detached), cross-entropy scaled by 2 x ``temperature``."""
    rank, _ = world()
    q, keys = F.normalize(q.float(), dim=1), F.normalize(gather(k.detach()).float(), dim=1)
    labels = torch.arange(q.shape[0], device=q.device) + rank * q.shape[0]
    return 2 * temperature * F.cross_entropy(q @ keys.T / temperature, labels)


@in_float32
def cmsc_loss(z1: torch.Tensor, z2: torch.Tensor, same: torch.Tensor, temperature: float) -> torch.Tensor:
    """CLOCS' contrastive multi-segment coding: cosine similarities / ``temperature`` between the first segments'
    embeddings (rows) and the second segments' (columns) of the global batch (every process's, gathered); every pair
    marked in ``same`` (N, N: the same recording, or the same patient) is a positive, scored by -log of its softmax
    along its row and along its column; the loss is the mean of those terms, the same on every process."""
    z1, z2 = gather(z1), gather(z2)
    logits = F.normalize(z1.float(), dim=1) @ F.normalize(z2.float(), dim=1).T / temperature
    same = same.to(logits.device)
    by_row, by_column = logits.log_softmax(dim=1), logits.log_softmax(dim=0)
    return -(by_row[same].mean() + by_column[same].mean()) / 2


@in_float32
def cpc_loss(
    predictions: torch.Tensor, targets: torch.Tensor, steps_ahead: int, negatives: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Contrastive predictive coding (van den Oord et al., 2018) as hhi-aml/ecg-selfsupervised scores it
    (``clinical_ts/cpc.py``): the prediction made at step t (B, T, F) must pick the target ``steps_ahead`` later among
    it and ``negatives`` targets drawn uniformly from the other steps of the same sequence, by dot product;
    cross-entropy averaged over the batch and summed over t. Returns (loss, share of steps that picked the target).
    """
    b, length, _ = targets.shape
    steps = length - steps_ahead
    if steps < 1 or length < 2:
        raise ValueError(f"cpc: {length} time steps cannot predict {steps_ahead} ahead")
    scores = predictions[:, :steps].float() @ targets.float().transpose(1, 2)  # (B, steps, T)
    positive = torch.arange(steps) + steps_ahead
    drawn = torch.randint(0, length - 1, (b, steps, negatives), generator=generator)
    drawn = drawn + (drawn >= positive[None, :, None]).long()  # every step but the positive's
    candidates = torch.cat([positive.expand(b, steps)[..., None], drawn], dim=2).to(scores.device)
    logits = torch.gather(scores, 2, candidates)  # (B, steps, 1 + negatives); the positive first
    zeros = torch.zeros(b * steps, dtype=torch.long, device=scores.device)
    loss = F.cross_entropy(logits.reshape(b * steps, -1), zeros, reduction="none").view(b, steps)
    accuracy = (logits.argmax(dim=2) == 0).float().mean()
    return loss.mean(dim=0).sum(), accuracy

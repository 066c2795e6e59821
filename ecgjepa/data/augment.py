"""ECG augmentations of the contrastive methods' sources, as composable, seeded transforms of a batch.

Each transform maps signals (B, leads, T) to a new tensor of the same shape, drawing its parameters per sample from a
``torch.Generator`` the caller seeds (the methods seed it by seed, rank, step and micro-batch, as the masks are), so a
resumed run augments exactly as an uninterrupted one. The transforms and their ranges follow the descriptions of
hhi-aml/ecg-selfsupervised (``clinical_ts/timeseries_transformations.py``, Mehari & Strodthoff 2022, appendix); the
numbers live in ``conf/method/``. A config names a transform by ``kind`` (see :data:`TRANSFORMS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def _uniform(batch: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator)


def _check_range(name: str, values: Sequence[float], low: float, high: float) -> tuple[float, float]:
    if len(values) != 2 or not low <= values[0] <= values[1] <= high:
        raise ValueError(f"{name}: expected [min, max] with {low} <= min <= max <= {high}, got {list(values)}")
    return float(values[0]), float(values[1])


class RandomResizedCrop:
    """Keep a random contiguous share of each sample (``crop_ratio`` uniform in the range) and stretch it back to
    the full length as the source does: the kept samples keep their order, the first and last at the two ends and the
    others at distinct random positions in between, and the gaps are filled by linear interpolation (a random local
    stretch, not a uniform one)."""

    def __init__(self, crop_ratio: Sequence[float]) -> None:
        self.crop_ratio = _check_range("random_resized_crop.crop_ratio", crop_ratio, 0.0, 1.0)
        if self.crop_ratio[0] <= 0:
            raise ValueError("random_resized_crop.crop_ratio: the smallest share must be above 0")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, leads, length = x.shape
        kept = (_uniform(b, *self.crop_ratio, generator) * length).long().clamp(2, length)
        starts = (torch.rand(b, generator=generator) * (length - kept + 1)).long()
        anchors = self.anchors(kept, length, generator)  # (B, T): where each kept sample lands, then `length`
        t = torch.arange(length).expand(b, length).contiguous()
        left = (torch.searchsorted(anchors, t, right=True) - 1).clamp(max=(kept - 2)[:, None])
        low, high = anchors.gather(1, left), anchors.gather(1, left + 1)
        weight = ((t - low) / (high - low)).to(x.device, torch.float32)[:, None, :]
        index = (starts[:, None] + left).to(x.device)[:, None, :].expand(b, leads, length)
        values = x.float()
        out = torch.gather(values, 2, index) * (1 - weight) + torch.gather(values, 2, index + 1) * weight
        return out.to(x.dtype)

    @staticmethod
    def anchors(kept: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
        """(B, length), each row ascending: 0, ``kept - 2`` distinct random positions among 1 .. length - 2, then
        length - 1, then ``length`` in the unused slots."""
        b = kept.shape[0]
        shuffled = torch.rand(b, length - 2, generator=generator).argsort(dim=1) + 1  # interior positions, shuffled
        first = torch.arange(length - 2) < (kept - 2)[:, None]  # the first kept - 2 of each row
        chosen = torch.where(first, shuffled, length).sort(dim=1).values
        anchors = torch.cat([torch.zeros(b, 1, dtype=torch.long), chosen, torch.full((b, 1), length)], dim=1)
        return anchors.scatter(1, (kept - 1)[:, None], length - 1)


class TimeOut:
    """Set a random contiguous share of each sample (``ratio`` uniform in the range) to zero, the normalised mean."""

    def __init__(self, ratio: Sequence[float]) -> None:
        self.ratio = _check_range("time_out.ratio", ratio, 0.0, 1.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, length = x.shape
        width = (_uniform(b, *self.ratio, generator) * length).long()
        starts = (torch.rand(b, generator=generator) * (length - width + 1)).long()
        t = torch.arange(length)
        hidden = (t >= starts[:, None]) & (t < (starts + width)[:, None])  # (B, T)
        return x.masked_fill(hidden[:, None, :].to(x.device), 0.0)


class ChannelResize:
    """Scale each lead by a factor drawn log-uniformly from ``magnitude``."""

    def __init__(self, magnitude: Sequence[float]) -> None:
        self.magnitude = _check_range("channel_resize.magnitude", magnitude, 1e-6, float("inf"))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, leads, _ = x.shape
        low, high = (torch.tensor(self.magnitude).log()).tolist()
        factors = (low + (high - low) * torch.rand(b, leads, generator=generator)).exp()
        return x * factors[..., None].to(x)


class GaussianNoise:
    """Add white noise of standard deviation ``scale`` (in normalised units)."""

    def __init__(self, scale: float) -> None:
        if scale < 0:
            raise ValueError(f"gaussian_noise.scale must be >= 0, got {scale}")
        self.scale = float(scale)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + self.scale * torch.randn(x.shape, generator=generator).to(x)


TRANSFORMS: dict[str, type] = {
    "random_resized_crop": RandomResizedCrop,
    "time_out": TimeOut,
    "channel_resize": ChannelResize,
    "gaussian_noise": GaussianNoise,
}


class Compose:
    """Transforms applied in order, each drawing from the same generator."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x


def build_augmentation(specs: Sequence[Mapping[str, Any]]) -> Compose:
    """``[{kind: time_out, ratio: [0.2, 0.4]}, ...]`` (a method's ``augmentations``) as one :class:`Compose`; an
    unknown kind or argument fails naming it."""
    transforms = []
    for i, spec in enumerate(specs):
        args = dict(spec)
        kind = args.pop("kind", None)
        if kind not in TRANSFORMS:
            raise ValueError(f"method.augmentations[{i}].kind: expected one of {sorted(TRANSFORMS)}, got {kind!r}")
        try:
            transforms.append(TRANSFORMS[kind](**args))
        except TypeError as error:
            raise ValueError(f"method.augmentations[{i}] ({kind}): {error}") from None
    return Compose(transforms)

"""inception1d: the InceptionTime-style network of the PTB-XL benchmark (helme/ecg_ptbxl_benchmarking
``code/models/inception1d.py``, config ``fastai_inception1d``), written anew from its description.

Six inception blocks, each a 1x1 bottleneck followed by three parallel convolutions (kernels 39/19/9) beside a
max-pool -> 1x1 branch on the block's input, concatenated and batch-normalised; a residual connection every three
blocks. No downsampling in time: the feature map has as many steps as the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ecgjepa.models.sequence import SequenceEncoder, SequenceEncoderConfig, kaiming_init


@dataclass(frozen=True)
class Inception1dConfig(SequenceEncoderConfig):
    """Attributes (besides :class:`SequenceEncoderConfig`): ``depth`` blocks; ``kernel_sizes`` of the parallel
    convolutions; ``filters`` per branch; ``bottleneck`` width; a residual connection every ``residual_every``
    blocks."""

    depth: int
    kernel_sizes: tuple[int, ...]
    filters: int
    bottleneck: int
    residual_every: int

    ARCH = "inception1d"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.depth % self.residual_every:
            raise ValueError(f"model.depth={self.depth} must be a multiple of residual_every={self.residual_every}")

    @property
    def width(self) -> int:
        return self.filters * (len(self.kernel_sizes) + 1)


def conv(c_in: int, c_out: int, kernel: int) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2, bias=False)


class InceptionBlock(nn.Module):
    def __init__(self, c_in: int, cfg: Inception1dConfig) -> None:
        super().__init__()
        self.bottleneck = conv(c_in, cfg.bottleneck, 1)
        self.branches = nn.ModuleList(conv(cfg.bottleneck, cfg.filters, k) for k in cfg.kernel_sizes)
        self.pool_branch = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), conv(c_in, cfg.filters, 1))
        self.norm = nn.BatchNorm1d(cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        narrow = self.bottleneck(x)
        out = torch.cat([branch(narrow) for branch in self.branches] + [self.pool_branch(x)], dim=1)
        return torch.relu(self.norm(out))


class Shortcut(nn.Module):
    """ReLU(block output + BN(1x1 conv of the residual's input))."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = conv(c_in, c_out, 1)
        self.norm = nn.BatchNorm1d(c_out)

    def forward(self, residual: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.relu(out + self.norm(self.conv(residual)))


class Inception1d(SequenceEncoder):
    def __init__(self, cfg: Inception1dConfig) -> None:
        super().__init__()
        self.config, self.embed_dim = cfg, cfg.width
        self.blocks = nn.ModuleList(
            InceptionBlock(cfg.in_channels if d == 0 else cfg.width, cfg) for d in range(cfg.depth)
        )
        self.shortcuts = nn.ModuleList(
            Shortcut(cfg.in_channels if s == 0 else cfg.width, cfg.width)
            for s in range(cfg.depth // cfg.residual_every)
        )
        kaiming_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        for d, block in enumerate(self.blocks):
            x = block(x)
            if (d + 1) % self.config.residual_every == 0:
                x = self.shortcuts[d // self.config.residual_every](residual, x)
                residual = x
        return x

    def source_head(self, num_classes: int) -> nn.Module:
        head = super().source_head(num_classes)
        kaiming_init(head)
        return head

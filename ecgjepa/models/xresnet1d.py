"""xresnet1d50 as hhi-aml/ecg-selfsupervised trains it (``models/xresnet1d.py`` with the first stem convolution
of ``models/resnet_simclr.py`` and the head of ``eval.py``), written anew from its description.

A three-convolution stem (kernel 5, the first with stride 2 and a bias) and a max-pool, then bottleneck stages
[3, 4, 6, 3] with expansion 4, all of bottleneck width ``stage_width`` (64: every stage outputs 256 channels, not
the image ResNet's widening 256/512/1024/2048). Stages 2-4 halve the time axis in their first block; the shortcut
average-pools first. The last batch norm of each residual branch starts at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ecgjepa.models.sequence import SequenceEncoder, SequenceEncoderConfig, kaiming_init


@dataclass(frozen=True)
class XResNet1dConfig(SequenceEncoderConfig):
    """Attributes (besides :class:`SequenceEncoderConfig`): ``stem_widths`` of the three stem convolutions,
    ``blocks`` per stage, ``stage_width`` (bottleneck width of every stage), ``expansion``, ``kernel_size`` of the
    stem and the middle convolution of each bottleneck."""

    stem_widths: tuple[int, ...]
    blocks: tuple[int, ...]
    stage_width: int
    expansion: int
    kernel_size: int

    ARCH = "xresnet1d"

    @property
    def width(self) -> int:
        return self.stage_width * self.expansion


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True, bias: bool = False
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=bias),
        nn.BatchNorm1d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, cfg: XResNet1dConfig, stride: int) -> None:
        super().__init__()
        mid, out = cfg.stage_width, cfg.width
        self.branch = nn.Sequential(
            conv_bn(c_in, mid, 1), conv_bn(mid, mid, cfg.kernel_size, stride), conv_bn(mid, out, 1, relu=False)
        )
        shortcut: list[nn.Module] = [nn.AvgPool1d(2, ceil_mode=True)] if stride != 1 else []
        if c_in != out:
            shortcut.append(conv_bn(c_in, out, 1, relu=False))
        self.shortcut = nn.Sequential(*shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.branch(x) + self.shortcut(x))


class XResNet1d(SequenceEncoder):
    def __init__(self, cfg: XResNet1dConfig) -> None:
        super().__init__()
        self.config, self.embed_dim = cfg, cfg.width
        widths = [cfg.in_channels, *cfg.stem_widths]
        self.stem = nn.Sequential(
            *(
                conv_bn(widths[i], widths[i + 1], cfg.kernel_size, stride=2 if i == 0 else 1, bias=i == 0)
                for i in range(len(cfg.stem_widths))
            ),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        stages, c_in = [], cfg.stem_widths[-1]
        for s, count in enumerate(cfg.blocks):
            blocks = []
            for b in range(count):
                blocks.append(Bottleneck(c_in, cfg, stride=2 if s > 0 and b == 0 else 1))
                c_in = cfg.width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        kaiming_init(self)
        for block in self.modules():
            if isinstance(block, Bottleneck):
                nn.init.zeros_(block.branch[-1][1].weight)
        self.stem[0][0].reset_parameters()  # the source swaps in a fresh nn.Conv1d here: PyTorch's default init

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

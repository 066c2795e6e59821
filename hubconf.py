"""torch.hub entry points: one per backbone of ``conf/model/``.

    encoder = torch.hub.load("<checkout of ecgjepa>", "vit_xs", source="local", weights="outputs/demo/export")

``weights`` is anything :func:`ecgjepa.load_encoder` reads (an export folder, a checkpoint, a run directory or a
Hub id ``hf://OWNER/NAME[@revision]``) and must hold that backbone; without it the backbone is freshly
initialised for 12 leads at its rate (10 s for the ViTs). Either way the module is in eval mode.
"""

from __future__ import annotations

dependencies = ["torch", "ecgjepa"]

from torch import nn  # noqa: E402

from ecgjepa.export import backbone  # noqa: E402


def vit_xs(weights: str | None = None) -> nn.Module:
    """ECG-JEPA's ViT-XS (width 192, depth 8)."""
    return backbone("vit_xs", weights)


def vit_s(weights: str | None = None) -> nn.Module:
    """ECG-JEPA's ViT-S (width 384, depth 8)."""
    return backbone("vit_s", weights)


def vit_b(weights: str | None = None) -> nn.Module:
    """ECG-JEPA's ViT-B (width 768, depth 12)."""
    return backbone("vit_b", weights)


def xresnet1d50(weights: str | None = None) -> nn.Module:
    """The xresnet1d50 of the PTB-XL benchmark (Strodthoff et al., 2021)."""
    return backbone("xresnet1d50", weights)


def inception1d(weights: str | None = None) -> nn.Module:
    """The inception1d of the PTB-XL benchmark (Strodthoff et al., 2021)."""
    return backbone("inception1d", weights)


def fc_lstm(weights: str | None = None) -> nn.Module:
    """CPC's 4FC+2LSTM+2FC network (Mehari & Strodthoff, 2022)."""
    return backbone("fc_lstm", weights)

"""ecgjepa: JEPA pre-training of ECG Vision Transformers (Weimann & Conrad, arXiv 2410.13867)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecgjepa.core.version import VERSION as __version__

__all__ = ["__version__", "load_encoder"]

if TYPE_CHECKING:
    from ecgjepa.models import VisionTransformer


def load_encoder(path: str) -> VisionTransformer:
    """A pre-trained encoder in eval mode from an export folder or any supported checkpoint."""
    from ecgjepa.export import load_encoder as _load

    return _load(path)

"""Lightning checkpoint IO through :func:`~ecgjepa.formats.files.atomic_write` and the safe loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from ecgjepa.formats.files import load_file, torch_save_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to ``<name>.tmp`` in the same folder, fsync, then rename onto the final name."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        torch_save_atomic(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        # Lightning checkpoints hold only tensors and plain Python values: refuse pickled code, and name
        # the file in every error (missing, truncated, pickled code).
        return load_file(path, map_location=map_location or "cpu")

"""Reading checkpoint files safely and writing them atomically.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint that carries pickled code is refused.
Checkpoints are written through :func:`ecgjepa.core.files.atomic_write`, like every other file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ecgjepa.core.files import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: unreadable, unknown layout, or wrong model size."""


def torch_save_atomic(obj: Any, path: str | Path) -> Path:
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def load_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file and the cause."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: cannot read the checkpoint (truncated or corrupted?): it is not the zip archive that "
            "torch.save writes"
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: it is not a plain-tensor checkpoint (weights_only=True): {err}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint (truncated or corrupted?): {err}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj

"""The one way this project writes a file: atomically. A kill at any moment leaves either the previous file or the
new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block has written it, flush it to disk and rename it onto
    ``path``. On an error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def save_npy_atomic(path: str | Path, array: np.ndarray) -> Path:
    """``numpy.save`` of one array, atomically (the file keeps the name it is given)."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    return Path(path)


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> Path:
    """``numpy.savez`` of named arrays, atomically."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def copy_atomic(source: str | Path, path: str | Path) -> Path:
    with atomic_write(path) as tmp, open(source, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    return Path(path)


def ensure_writable_dir(path: str | Path, what: str = "output directory") -> Path:
    """Create ``path`` if needed and check that a file can be written there (root ignores chmod: try it).

    Raises ``PermissionError`` naming the folder, before any compute is spent on a run that could not
    save its results.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise PermissionError(f"{what} {path} is not writable: {err}") from err
    return path

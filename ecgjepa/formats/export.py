"""The encoder export: a folder with ``model.safetensors`` (the encoder's tensors) and ``config.json`` (format,
model sizes, input conventions, normalisation constants, where it came from). The pre-training callback writes it
into ``<run>/encoder/``; ``ecgjepa-export`` writes it with a model card; ``ecgjepa-convert`` turns an original
minified checkpoint into one. safetensors sorts tensors by name; the written order is kept in the file's metadata
(``key_order``) and restored on reading, so conversions back to the original are key-for-key identical.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file as save_safetensors

from ecgjepa.core.files import atomic_write, write_text_atomic
from ecgjepa.core.version import VERSION
from ecgjepa.formats.files import CheckpointError
from ecgjepa.models.backbones import EncoderConfig, encoder_config

EXPORT_FORMAT = "ecgjepa-encoder"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def is_export(path: str | Path) -> bool:
    """An export folder, or its ``model.safetensors`` / ``config.json``."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    named = path.is_dir() or path.name in (WEIGHTS, CONFIG)
    return named and (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def export_description(
    config: EncoderConfig,
    preprocess: Mapping[str, Any],
    pretraining: Mapping[str, Any],
    original_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``config.json``."""
    description = {
        "format": EXPORT_FORMAT,
        "version": 2,
        "ecgjepa_version": VERSION,
        "model": config.to_dict(),
        "input": {
            "sampling_frequency": config.sampling_frequency,
            "leads": list(config.channels),
            "length": config.channel_size,
            "patch_size": getattr(config, "patch_size", None),
            "normalisation": "per-lead z-score with the constants below, then clip to [-5, 5]",
        },
        "normalisation": dict(preprocess.get("normalisation") or {}),
        "pretraining": dict(pretraining),
    }
    if original_config is not None:
        description["original_config"] = dict(original_config)
    return description


def write_export(folder: str | Path, state: Mapping[str, torch.Tensor], description: Mapping[str, Any]) -> Path:
    """Write ``model.safetensors`` and then ``config.json`` (which marks a complete export) into ``folder``."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_write(folder / WEIGHTS) as tmp:
        save_safetensors(tensors, str(tmp), metadata={"key_order": json.dumps(list(tensors))})
    write_text_atomic(folder / CONFIG, json.dumps(description, indent=2) + "\n")
    return folder


def read_export(path: str | Path) -> tuple[EncoderConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """``(model config, encoder state in model order, description)`` of an export folder (or a file in it)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    try:
        description = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{folder / CONFIG}: not a readable encoder description: {err}") from None
    if not isinstance(description, dict) or description.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f'{folder / CONFIG}: expected "format": "{EXPORT_FORMAT}"')
    config = encoder_config(description["model"])
    try:
        with safe_open(str(folder / WEIGHTS), framework="pt") as file:
            order = json.loads((file.metadata() or {}).get("key_order", "[]"))
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"{folder / WEIGHTS}: cannot read the weights (truncated or corrupted?): {err}") from None
    rank = {key: i for i, key in enumerate(order)}
    ordered = sorted(tensors.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))
    return config, OrderedDict(ordered), description

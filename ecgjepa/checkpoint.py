"""Reading and writing encoder weights in every layout the project meets.

Layouts recognised by :func:`load_encoder_state`:

* ``ecgjepa-encoder``: our encoder export (``EncoderExport`` callback / ``ecgjepa-export``);
* a Lightning pre-training checkpoint of :class:`~ecgjepa.modules.jepa.JEPAModule` (``state_dict`` with
  ``target_encoder.*``; the EMA target encoder is the one returned);
* an original ECG-JEPA pre-training checkpoint (``model`` with ``target_encoder.*``, ``optimizer``,
  ``config``, ``step``) or its minified form (``model`` with ``target_encoder.*`` and ``config``).

Every file is read with ``torch.load(weights_only=True)``: a checkpoint that carries pickled code is
refused.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ecgjepa.models.config import ModelConfig

EXPORT_FORMAT = "ecgjepa-encoder"
ORIGINAL_MODEL_KEYS = (
    "channels",
    "channel_size",
    "patch_size",
    "dim",
    "depth",
    "num_heads",
    "pred_dim",
    "pred_depth",
    "pred_num_heads",
    "mlp_ratio",
    "qkv_bias",
    "dropout",
    "attn_dropout",
    "num_registers",
    "bias",
    "norm_eps",
    "layer_scale_eps",
)


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: unreadable, unknown layout, or wrong model size."""


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


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keep entries starting with ``prefix`` and drop the prefix (also unwraps ``torch.compile``)."""
    out = {}
    for key, value in state.items():
        key = key.replace("_orig_mod.", "")
        if key.startswith(prefix):
            out[key[len(prefix) :]] = value
    return out


def model_config_from_original(config: Mapping[str, Any]) -> ModelConfig:
    """Translate an original ECG-JEPA pre-training config dict into our :class:`ModelConfig`."""
    missing = [k for k in ORIGINAL_MODEL_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"original config lacks key(s) {missing}")
    return ModelConfig(**{k: config[k] for k in ORIGINAL_MODEL_KEYS}, name=f"original-dim{config['dim']}")


def detect_layout(ckpt: Mapping[str, Any]) -> str:
    """Name the layout of a loaded checkpoint dict (see the module docstring)."""
    if ckpt.get("format") == EXPORT_FORMAT:
        return "export"
    if "state_dict" in ckpt and "hyper_parameters" in ckpt:
        if "protocol" in ckpt["hyper_parameters"]:
            return "lightning-eval"
        return "lightning-pretrain"
    if "model" in ckpt and "config" in ckpt:
        if "eval_config" in ckpt:
            return "original-eval"
        return "original-pretrain" if "optimizer" in ckpt else "original-minified"
    raise CheckpointError(f"unknown checkpoint layout with top-level keys {sorted(ckpt)}")


def load_encoder_state(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``(model config, target-encoder state dict, extras)`` from any supported file.

    ``extras`` holds what else the file says: ``layout``, ``step`` and ``preprocess`` where known.
    """
    ckpt = load_file(path)
    layout = detect_layout(ckpt)
    if layout == "export":
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        return (
            cfg,
            dict(ckpt["state_dict"]),
            {
                "layout": layout,
                "step": ckpt.get("step"),
                "preprocess": ckpt.get("preprocess", {}),
            },
        )
    if layout == "lightning-pretrain":
        cfg = ModelConfig.from_dict(ckpt["hyper_parameters"]["model"])
        return (
            cfg,
            strip_prefix(ckpt["state_dict"], "target_encoder."),
            {
                "layout": layout,
                "step": ckpt.get("global_step"),
                "preprocess": {},
            },
        )
    if layout in ("original-pretrain", "original-minified"):
        cfg = model_config_from_original(ckpt["config"])
        state = strip_prefix(ckpt["model"], "target_encoder.")
        if not state:
            raise CheckpointError(f"{path}: no target_encoder.* tensors in the original checkpoint")
        return (
            cfg,
            state,
            {
                "layout": layout,
                "step": ckpt.get("step"),
                "preprocess": {},
                "original_sources": list(ckpt["config"].get("datasets", {})),
            },
        )
    raise CheckpointError(f"{path}: a {layout} checkpoint holds a classifier, not a pre-trained encoder")


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, strict: bool = True) -> None:
    """Load ``state`` into ``module``; a shape mismatch or (when strict) a missing/unexpected key fails
    with a message naming ``source`` and the offending keys."""
    own = module.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        raise CheckpointError(f"{source}: size mismatch (another model size?): " + "; ".join(mismatched[:5]))
    result = module.load_state_dict(state, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise CheckpointError(
            f"{source}: missing keys {result.missing_keys[:8]}, unexpected keys {result.unexpected_keys[:8]}"
        )


def save_encoder(
    path: str | Path,
    config: ModelConfig,
    state: Mapping[str, torch.Tensor],
    preprocess: Mapping[str, Any],
    step: int | None = None,
) -> Path:
    """Write an encoder export atomically (temp file + rename); loads with ``weights_only=True``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "model_config": config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
        "preprocess": dict(preprocess),
        "step": step,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def find_checkpoint(path: str | Path) -> Path:
    """A run directory -> the file to evaluate: ``checkpoints/best.ckpt`` of an evaluation run, or
    ``encoder/encoder.pt`` of a pre-training run (else its ``checkpoints/last.ckpt``)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"encoder={path}: no such file or directory")
    for candidate in ("checkpoints/best.ckpt", "encoder/encoder.pt", "checkpoints/last.ckpt", "encoder.pt"):
        if (path / candidate).is_file():
            return path / candidate
    raise FileNotFoundError(
        f"encoder={path}: no checkpoints/best.ckpt, encoder/encoder.pt or checkpoints/last.ckpt inside"
    )


def load_classifier_state(
    path: str | Path,
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(encoder config, classifier state with encoder.* and head keys, extras)`` of an evaluation
    checkpoint (ours or the original's ``<task>_best_chkpt.pt``); None for any other layout."""
    ckpt = load_file(path)
    layout = detect_layout(ckpt)
    if layout == "lightning-eval":
        cfg = ModelConfig.from_dict(ckpt["hyper_parameters"]["model"])
        state = strip_prefix(ckpt["state_dict"], "model.")
        return cfg, state, {"layout": layout, "num_classes": ckpt["hyper_parameters"]["num_classes"]}
    if layout == "original-eval":
        cfg = model_config_from_original(ckpt["config"])
        return (
            cfg,
            dict(ckpt["model"]),
            {"layout": layout, "num_classes": ckpt["eval_config"].get("num_classes")},
        )
    return None

"""Recognising and reading every checkpoint layout the project meets.

* ``export``: our encoder export, a folder (see :mod:`ecgjepa.formats.export`);
* ``lightning-pretrain``: a Lightning checkpoint of a pre-training method (``method`` names it; none = JEPA): JEPA's
  ``state_dict`` has ``target_encoder.*`` (the EMA target encoder is the one evaluated), the others' ``encoder.*``;
* ``lightning-eval``: a Lightning checkpoint of :class:`~ecgjepa.modules.classifier.ClassifierModule`;
* ``original-pretrain`` / ``original-minified``: an original ECG-JEPA pre-training checkpoint (``model`` with
  ``target_encoder.*``, ``optimizer``, ``config``, ``step``) or its minified form (``model`` + ``config``);
* ``original-eval``: an original evaluation checkpoint (``<task>_best_chkpt.pt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ecgjepa.formats.export import is_export, read_export
from ecgjepa.formats.files import CheckpointError, load_file
from ecgjepa.formats.hub import local_path
from ecgjepa.models.backbones import EncoderConfig, encoder_config
from ecgjepa.models.config import ModelConfig

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
    # NOTE(parity): the original's HEAD initialises with truncated normals; the weights are loaded anyway.
    keys = {k: config[k] for k in ORIGINAL_MODEL_KEYS}
    return ModelConfig(**keys, init="trunc_normal", name=f"original-dim{config['dim']}")


def detect_layout(ckpt: Mapping[str, Any]) -> str:
    """Name the layout of a loaded checkpoint dict (see the module docstring)."""
    if "state_dict" in ckpt and "hyper_parameters" in ckpt:
        if "protocol" in ckpt["hyper_parameters"]:
            return "lightning-eval"
        return "lightning-pretrain"
    if "model" in ckpt and "config" in ckpt:
        if "eval_config" in ckpt:
            return "original-eval"
        return "original-pretrain" if "optimizer" in ckpt else "original-minified"
    raise CheckpointError(f"unknown checkpoint layout with top-level keys {sorted(ckpt)}")


def load_encoder_state(path: str | Path) -> tuple[EncoderConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``(model config, target-encoder state dict, extras)`` from any supported file.

    ``extras`` holds what else the file says: ``layout``, ``step`` and ``preprocess`` where known.
    """
    if is_export(path):
        cfg, state, description = read_export(path)
        preprocess = {
            "sampling_frequency": description["input"].get("sampling_frequency"),
            "normalisation": description.get("normalisation") or {},
            "leads": description["input"].get("leads_used"),
        }
        pretraining = description.get("pretraining") or {}
        extras = {
            "layout": "export",
            "step": pretraining.get("step"),
            "preprocess": preprocess,
            "method": pretraining.get("method", "jepa"),
        }
        if "original_config" in description:
            extras["original_sources"] = list(description["original_config"].get("datasets", {}))
        return cfg, dict(state), extras
    ckpt = load_file(path)
    layout = detect_layout(ckpt)
    if layout == "lightning-pretrain":
        cfg = encoder_config(ckpt["hyper_parameters"]["model"])
        method = ckpt.get("method", "jepa")
        return (
            cfg,
            strip_prefix(ckpt["state_dict"], "target_encoder." if method == "jepa" else "encoder."),
            {
                "layout": layout,
                "step": ckpt.get("global_step"),
                "preprocess": {},
                "pretraining_data": dict(ckpt["hyper_parameters"].get("data") or {}),
                "method": method,
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


def find_checkpoint(path: str | Path) -> Path:
    """A run directory -> what to evaluate: ``checkpoints/best.ckpt`` of an evaluation run, or the encoder export
    ``encoder/`` of a pre-training run (else its ``checkpoints/last.ckpt``); an export folder is itself; a Hub id
    ``hf://OWNER/NAME[@revision]`` is its snapshot folder."""
    path = local_path(path)
    if path.is_file() or is_export(path):
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"encoder={path}: no such file or directory")
    for candidate in ("checkpoints/best.ckpt", "encoder", "checkpoints/last.ckpt"):
        if (path / candidate).is_file() or is_export(path / candidate):
            return path / candidate
    raise FileNotFoundError(
        f"encoder={path}: no checkpoints/best.ckpt, encoder/ export or checkpoints/last.ckpt inside"
    )


def load_classifier_state(
    path: str | Path,
) -> tuple[EncoderConfig, dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(encoder config, classifier state with encoder.* and head keys, extras)`` of an evaluation
    checkpoint (ours or the original's ``<task>_best_chkpt.pt``); None for any other layout."""
    if is_export(path):
        return None
    ckpt = load_file(path)
    layout = detect_layout(ckpt)
    if layout == "lightning-eval":
        cfg = encoder_config(ckpt["hyper_parameters"]["model"])
        state = strip_prefix(ckpt["state_dict"], "model.")
        hp = ckpt["hyper_parameters"]
        return cfg, state, {"layout": layout, "num_classes": hp["num_classes"], "method": hp.get("method", "jepa")}
    if layout == "original-eval":
        cfg = model_config_from_original(ckpt["config"])
        return (
            cfg,
            dict(ckpt["model"]),
            {"layout": layout, "num_classes": ckpt["eval_config"].get("num_classes")},
        )
    return None

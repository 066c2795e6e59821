"""Lossless conversion between this project's checkpoints and the original ECG-JEPA's.

* original full pre-training checkpoint -> ``ecgjepa``: a Lightning checkpoint of
  :class:`~ecgjepa.modules.jepa.JEPAModule` (online encoder, predictor, target encoder, AdamW state,
  step) that ``ecgjepa-train ckpt_path=<out>`` continues; the original config is kept verbatim.
* original minified checkpoint -> ``ecgjepa``: an encoder export folder (:mod:`ecgjepa.formats.export`).
* our Lightning pre-training checkpoint -> ``original`` (``model``/``optimizer``/``config``/``step``, the
  keys, nesting and dtypes ``pretrain.py`` writes) or ``original_minified`` (``target_encoder.*`` + config).
* our encoder export -> ``original_minified``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from ecgjepa.formats.export import export_description, is_export, read_export, write_export
from ecgjepa.formats.files import CheckpointError, load_file, torch_save_atomic
from ecgjepa.formats.layouts import detect_layout, model_config_from_original, strip_prefix
from ecgjepa.optim import OptimConfig
from ecgjepa.utils.hydra import load_group_option
from ecgjepa.utils.paths import conf_dir

FORMATS = ("ecgjepa", "original", "original_minified")
ORIGINAL_GROUP_KEYS = (
    "weight_decay",
    "use_weight_decay",
    "lr",
    "betas",
    "eps",
    "amsgrad",
    "maximize",
    "foreach",
    "capturable",
    "differentiable",
    "fused",
    "decoupled_weight_decay",
    "params",
)
# The original's dataset keys <-> our source slugs.
SOURCE_KEYS = {
    "mimic-iv-ecg": "mimic_iv_ecg",
    "code-15": "code15",
    "ptb-xl": "ptbxl",
    "chapman-shaoxing": "chapman_shaoxing",
    "cpsc": "cpsc",
    "cpsc-extra": "cpsc_extra",
    "georgia": "georgia",
    "ningbo": "ningbo",
    "ptb": "ptb",
    "st-petersburg": "st_petersburg",
}
OPTIM_KEYS = (
    "steps",
    "learning_rate",
    "final_learning_rate",
    "learning_rate_warmup_steps",
    "weight_decay",
    "final_weight_decay",
    "opt_eps",
)
RECIPE_KEYS = ("encoder_momentum", "final_encoder_momentum", "checkpoint_interval")
DATA_KEYS = ("sampling_frequency", "channel_size", "min_block_size", "min_keep_ratio", "max_keep_ratio", "batch_size")


def optim_from_original(config: Mapping[str, Any]) -> dict[str, Any]:
    """Our ``optim`` block from an original pre-training config."""
    optim = {k: config[k] for k in OPTIM_KEYS if k in config}
    optim["opt_betas"] = list(config["opt_betas"])
    optim["fused"] = None
    return optim


def recipe_from_original(config: Mapping[str, Any]) -> dict[str, Any]:
    """The EMA and checkpoint settings of an original pre-training config (the ``recipe`` hyper-parameter)."""
    # NOTE(parity): the original updates the EMA before every forward (micro-batch).
    return {**{k: config[k] for k in RECIPE_KEYS if k in config}, "ema_update_on": "forward"}


def paper_recipe() -> dict[str, dict[str, Any]]:
    """The paper's pre-training recipe as conf/ states it (optim, data, EMA and checkpoint settings): what an
    original config needs and an encoder export, or a run without those callbacks, does not record."""
    callbacks = OmegaConf.load(conf_dir() / "callbacks" / "pretrain.yaml")
    data = OmegaConf.load(conf_dir() / "data_base" / "pretrain.yaml")
    return {
        "optim": load_group_option("optim", "paper"),
        "data": {k: data[k] for k in DATA_KEYS if k in data},
        "recipe": {
            "encoder_momentum": callbacks.target_momentum.encoder_momentum,
            "final_encoder_momentum": callbacks.target_momentum.final_encoder_momentum,
            "ema_update_on": callbacks.target_momentum.update_on,
            "checkpoint_interval": callbacks.model_checkpoint.every_n_train_steps,
        },
    }


def data_from_original(config: Mapping[str, Any]) -> dict[str, Any]:
    data = {k: config[k] for k in DATA_KEYS if k in config}
    data["sources"] = {SOURCE_KEYS.get(k, k): {"weight": w} for k, w in config.get("datasets", {}).items()}
    return data


def loops_state(step: int) -> dict[str, Any]:
    """Lightning fit-loop progress as a ``ModelCheckpoint`` saves it after optimizer step ``step``."""

    def progress(ready: int, completed: int, started: int | None = None, processed: int | None = None) -> dict:
        counts = {"ready": ready, "completed": completed}
        if started is not None:
            counts["started"] = started
        if processed is not None:
            counts["processed"] = processed
        return {"total": dict(counts), "current": dict(counts)}

    batch = {**progress(step, step - 1, step, step), "is_last_batch": False}
    idle = {**progress(0, 0, 0, 0), "is_last_batch": False}
    return {
        "fit_loop": {
            "state_dict": {},
            "epoch_loop.state_dict": {"_batches_that_stepped": step - 1},
            "epoch_loop.batch_progress": batch,
            "epoch_loop.scheduler_progress": progress(step, step),
            "epoch_loop.automatic_optimization.state_dict": {},
            "epoch_loop.automatic_optimization.optim_progress": {
                "optimizer": {"step": progress(step, step), "zero_grad": progress(step, step, step)}
            },
            "epoch_loop.manual_optimization.state_dict": {},
            "epoch_loop.manual_optimization.optim_step_progress": progress(0, 0),
            "epoch_loop.val_loop.state_dict": {},
            "epoch_loop.val_loop.batch_progress": idle,
            "epoch_progress": progress(1, 0, 1, 0),
        },
        "validate_loop": {"state_dict": {}, "batch_progress": idle},
        "test_loop": {"state_dict": {}, "batch_progress": idle},
        "predict_loop": {"state_dict": {}, "batch_progress": progress(0, 0, 0, 0)},
    }


def original_to_lightning(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """An original full pre-training checkpoint as a resumable Lightning checkpoint of JEPAModule."""
    config = dict(ckpt["config"])
    model = model_config_from_original(config).to_dict()
    optim = optim_from_original(config)
    step = int(ckpt["step"])
    cfg = OptimConfig.from_dict(optim)
    # The original stores the learning rate of the step it took last; ours carries the one the next step uses.
    optimizer = {
        "state": ckpt["optimizer"]["state"],
        "param_groups": [
            {**g, "lr": cfg.lr_at(step), "initial_lr": config["learning_rate"]}
            for g in ckpt["optimizer"]["param_groups"]
        ],
    }
    lr_factor = cfg.lr_at(step) / cfg.learning_rate
    scheduler = {
        "base_lrs": [config["learning_rate"]] * len(optimizer["param_groups"]),
        "last_epoch": step,
        "_step_count": step + 1,
        "_is_initial": False,
        "_get_lr_called_within_step": False,
        "_last_lr": [config["learning_rate"] * lr_factor] * len(optimizer["param_groups"]),
        "lr_lambdas": [None] * len(optimizer["param_groups"]),
    }
    return {
        "epoch": 0,
        "global_step": step,
        "pytorch-lightning_version": L.__version__,
        "state_dict": OrderedDict(ckpt["model"]),
        "loops": loops_state(step),
        "callbacks": {},
        "optimizer_states": [optimizer],
        "lr_schedulers": [scheduler],
        "hparams_name": "kwargs",
        "hyper_parameters": {
            "model": model,
            "optim": optim,
            "compile": False,
            "data": data_from_original(config),
            "recipe": recipe_from_original(config),
            "original_config": config,
        },
    }


def original_config(hp: Mapping[str, Any]) -> dict[str, Any]:
    """The original's 36-key pre-training config from our hyper-parameters (verbatim if we have it)."""
    if "original_config" in hp:
        return dict(hp["original_config"])
    paper = paper_recipe()
    model = hp["model"]
    optim = {**paper["optim"], **(hp.get("optim") or {})}
    data = {**paper["data"], **{k: v for k, v in (hp.get("data") or {}).items() if v is not None}}
    recipe = {**paper["recipe"], **{k: v for k, v in (hp.get("recipe") or {}).items() if v is not None}}
    inverse = {v: k for k, v in SOURCE_KEYS.items()}
    return {
        "sampling_frequency": int(data["sampling_frequency"]),
        "channels": list(model["channels"]),
        "channel_size": int(model["channel_size"]),
        "patch_size": int(model["patch_size"]),
        "min_block_size": int(data["min_block_size"]),
        "min_keep_ratio": float(data["min_keep_ratio"]),
        "max_keep_ratio": float(data["max_keep_ratio"]),
        "datasets": {inverse.get(k, k): float(v["weight"]) for k, v in data.get("sources", {}).items()},
        **{k: model[k] for k in ("dim", "depth", "num_heads", "pred_dim", "pred_depth", "pred_num_heads")},
        "mlp_ratio": float(model["mlp_ratio"]),
        "qkv_bias": bool(model["qkv_bias"]),
        "dropout": float(model["dropout"]),
        "attn_dropout": float(model["attn_dropout"]),
        "num_registers": int(model["num_registers"]),
        "bias": bool(model["bias"]),
        "norm_eps": float(model["norm_eps"]),
        "layer_scale_eps": float(model["layer_scale_eps"]),
        "steps": int(optim["steps"]),
        "batch_size": int(data["batch_size"]),
        "encoder_momentum": float(recipe["encoder_momentum"]),
        "final_encoder_momentum": float(recipe["final_encoder_momentum"]),
        "learning_rate": float(optim["learning_rate"]),
        "final_learning_rate": float(optim["final_learning_rate"]),
        "learning_rate_warmup_steps": int(optim["learning_rate_warmup_steps"]),
        "weight_decay": float(optim["weight_decay"]),
        "final_weight_decay": float(optim["final_weight_decay"]),
        "opt_betas": [float(b) for b in optim["opt_betas"]],
        "opt_eps": float(optim["opt_eps"]),
        "gradient_clip": 0,
        "gradient_accumulation_steps": int(hp.get("accumulate_grad_batches", 1)),
        "checkpoint_interval": int(recipe["checkpoint_interval"]),
    }


def lightning_to_original(ckpt: Mapping[str, Any], minified: bool) -> dict[str, Any]:
    """Our JEPAModule checkpoint in the original's layout (``pretrain.py`` or the minify script)."""
    state = strip_prefix(ckpt["state_dict"], "")
    config = original_config(ckpt["hyper_parameters"])
    if minified:
        return {
            "model": OrderedDict((k, v) for k, v in state.items() if k.startswith("target_encoder.")),
            "config": config,
        }
    optimizer = ckpt["optimizer_states"][0]
    step = int(ckpt["global_step"])
    groups = [{k: g[k] for k in ORIGINAL_GROUP_KEYS if k in g} for g in optimizer["param_groups"]]
    if step > 0:  # the original's groups carry the learning rate of the last step taken
        last_lr = OptimConfig.from_dict(optim_from_original(config)).lr_at(step - 1)
        groups = [{**g, "lr": last_lr} if "lr" in g else g for g in groups]
    return {
        "model": OrderedDict(state),
        "optimizer": {"state": optimizer["state"], "param_groups": groups},
        "config": config,
        "step": step,
    }


def export_to_original_minified(folder: Path) -> dict[str, Any]:
    cfg, state, description = read_export(folder)
    hp = {"model": cfg.to_dict(), "optim": {}, "data": {}}
    if "original_config" in description:
        hp["original_config"] = description["original_config"]
    return {"model": OrderedDict((f"target_encoder.{k}", v) for k, v in state.items()), "config": original_config(hp)}


def minified_to_export(ckpt: Mapping[str, Any], folder: Path) -> None:
    config = ckpt["config"]
    description = export_description(
        model_config_from_original(config),
        {"sampling_frequency": config.get("sampling_frequency")},
        {"data": dict(config.get("datasets", {})), "step": None, "layout": "original-minified"},
        original_config=config,
    )
    write_export(folder, strip_prefix(ckpt["model"], "target_encoder."), description)


def refuse_other_methods(src: str | Path, method: str) -> None:
    """Only JEPA checkpoints have a counterpart in the original ECG-JEPA's layouts."""
    if method != "jepa":
        raise CheckpointError(
            f"{src}: a method={method} checkpoint has no counterpart in the original ECG-JEPA's layouts, which hold "
            "JEPA models only; use it as it is (ecgjepa-eval, ecgjepa-export, ecgjepa-embed)"
        )


def convert(src: str | Path, dst: str | Path, fmt: str = "ecgjepa") -> str:
    """Convert ``src`` into ``fmt`` at ``dst`` (a file, or the folder of an encoder export); returns a one-line
    description of what was done."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    dst = Path(dst)
    if is_export(src):
        method = (read_export(src)[2].get("pretraining") or {}).get("method", "jepa")
        refuse_other_methods(src, method)
        if fmt != "original_minified":
            raise CheckpointError(
                f"{src}: an export checkpoint cannot be converted to format={fmt}; possible: ['original_minified']"
            )
        torch_save_atomic(export_to_original_minified(Path(src)), dst)
        return f"{src} (export) -> {dst} (format={fmt})"
    ckpt = load_file(src)
    layout = detect_layout(ckpt)
    if layout == "lightning-pretrain":
        refuse_other_methods(src, ckpt.get("method", "jepa"))
    if (layout, fmt) == ("original-minified", "ecgjepa"):
        minified_to_export(ckpt, dst)
        return f"{src} ({layout}) -> {dst}/ (encoder export)"
    table = {
        ("original-pretrain", "ecgjepa"): original_to_lightning,
        ("original-pretrain", "original_minified"): lambda c: {
            "model": OrderedDict((k, v) for k, v in c["model"].items() if k.startswith("target_encoder.")),
            "config": c["config"],
        },
        ("lightning-pretrain", "original"): lambda c: lightning_to_original(c, minified=False),
        ("lightning-pretrain", "original_minified"): lambda c: lightning_to_original(c, minified=True),
    }
    if (layout, fmt) not in table:
        possible = sorted(f for (lay, f) in table if lay == layout)
        possible += ["ecgjepa"] if layout == "original-minified" else []
        raise CheckpointError(f"{src}: a {layout} checkpoint cannot be converted to format={fmt}; possible: {possible}")
    torch_save_atomic(table[(layout, fmt)](ckpt), dst)
    return f"{src} ({layout}) -> {dst} (format={fmt})"

"""``ecgjepa-train``: JEPA pre-training (Hydra entry point over a testable ``run``)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ecgjepa.checkpoint import CheckpointError, detect_layout, load_file
from ecgjepa.convert import original_to_lightning
from ecgjepa.modules.jepa import JEPAModule
from ecgjepa.utils.hydra import instantiate_dict, resolve_ckpt_path
from ecgjepa.utils.paths import conf_dir, register_resolvers

log = logging.getLogger(__name__)
register_resolvers()


def output_dir(cfg: DictConfig) -> str:
    return cfg.paths.output_dir if HydraConfig.initialized() else cfg.paths.get("output_dir", ".")


def continue_from_original(ckpt_path: str, module: JEPAModule, out_dir: str) -> str:
    """An original ECG-JEPA checkpoint is converted into a Lightning one that this run can resume."""
    ckpt = load_file(ckpt_path)
    if detect_layout(ckpt) != "original-pretrain":
        return ckpt_path
    converted = original_to_lightning(ckpt)
    theirs, ours = converted["hyper_parameters"]["model"], module.model_config.to_dict()
    different = {k: (theirs[k], ours[k]) for k in theirs if k != "name" and theirs[k] != ours.get(k)}
    if different:
        raise CheckpointError(f"{ckpt_path}: the original model differs from model=...: {different} (theirs, ours)")
    target = Path(out_dir) / "checkpoints" / "converted_from_original.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(converted, target)
    log.warning(
        "continuing the original checkpoint %s at step %d: weights (encoder, predictor, target encoder), AdamW "
        "state and step carried over; the original's data-sampling position and RNG state do not exist in its "
        "checkpoints, so sampling continues this run's seeded stream at that step; schedules, EMA mode and data "
        "come from this run's config",
        ckpt_path,
        converted["global_step"],
    )
    return str(target)


def run(cfg: DictConfig) -> dict[str, float]:
    """Pre-train with a composed config; returns the final logged metrics."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    datamodule = instantiate(cfg.data, _convert_="all")
    module = instantiate(cfg.module, _convert_="all")
    callbacks = instantiate_dict(cfg.get("callbacks"))
    loggers = instantiate_dict(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all")
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir(cfg))
    if ckpt_path:
        ckpt_path = continue_from_original(ckpt_path, module, output_dir(cfg))
        log.info("resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def main(cfg: DictConfig) -> None:
    log.info("output directory: %s", output_dir(cfg))
    metrics = run(cfg)
    log.info("final metrics: %s", OmegaConf.to_yaml(metrics))


if __name__ == "__main__":
    main()

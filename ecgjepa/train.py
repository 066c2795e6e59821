"""``ecgjepa-train``: pre-training with the chosen ``method`` (Hydra entry point over a testable ``run``)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ecgjepa.accel import Accel
from ecgjepa.accel.capability import device_type
from ecgjepa.accel.precision import resolve_precision
from ecgjepa.cli import HydraCommand
from ecgjepa.core.files import ensure_writable_dir
from ecgjepa.formats.files import CheckpointError, load_file, torch_save_atomic
from ecgjepa.formats.layouts import detect_layout
from ecgjepa.formats.original import original_to_lightning
from ecgjepa.models.backbones import encoder_config
from ecgjepa.modules.pretrain import PretrainModule
from ecgjepa.utils.hydra import instantiate_loggers_and_callbacks, resolve_ckpt_path
from ecgjepa.utils.paths import conf_dir, register_resolvers

log = logging.getLogger(__name__)
register_resolvers()


def output_dir(cfg: DictConfig) -> str:
    return cfg.paths.output_dir if HydraConfig.initialized() else cfg.paths.get("output_dir", ".")


def check_same_model(ckpt_path: str, theirs: dict, module: PretrainModule, what: str = "checkpoint's model") -> None:
    """Refuse to resume a checkpoint of another model size, naming the file and the differing keys."""
    try:
        theirs = encoder_config(theirs).to_dict()
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt_path}: unusable model config in the checkpoint: {err}") from None
    ours = module.model_config.to_dict()
    different = {k: (theirs.get(k), ours[k]) for k in ours if k not in ("name", "init") and theirs.get(k) != ours[k]}
    if different:
        raise CheckpointError(f"{ckpt_path}: the {what} differs from model=...: {different} (theirs, ours)")


def continue_from_original(ckpt_path: str, module: PretrainModule, out_dir: str) -> str:
    """Check that ``ckpt_path`` can resume this run; an original ECG-JEPA checkpoint is converted into a
    Lightning one."""
    ckpt = load_file(ckpt_path)
    layout = detect_layout(ckpt)
    if layout == "lightning-pretrain":
        method = ckpt.get("method", "jepa")  # checkpoints written before methods were a config group are JEPA's
        if method != module.method:
            raise CheckpointError(f"{ckpt_path}: a method={method} checkpoint cannot resume method={module.method}")
        check_same_model(ckpt_path, ckpt["hyper_parameters"]["model"], module)
        return ckpt_path
    if layout != "original-pretrain":
        raise CheckpointError(
            f"{ckpt_path}: a {layout} checkpoint cannot resume pre-training; expected a pre-training checkpoint "
            "(checkpoints/*.ckpt of an ecgjepa-train run, or an original ECG-JEPA one with its optimizer state)"
        )
    if module.method != "jepa":
        raise CheckpointError(f"{ckpt_path}: an original ECG-JEPA checkpoint cannot resume method={module.method}")
    converted = original_to_lightning(ckpt)
    check_same_model(ckpt_path, converted["hyper_parameters"]["model"], module, "original model")
    target = Path(out_dir) / "checkpoints" / "converted_from_original.ckpt"
    torch_save_atomic(converted, target)
    log.warning(
        "continuing the original checkpoint %s at step %d: weights (encoder, predictor, target encoder), AdamW "
        "state and step carried over; the original's data-sampling position and RNG state do not exist in its "
        "checkpoints, so sampling continues this run's seeded stream at that step; schedules, EMA mode and data "
        "come from this run's config",
        ckpt_path,
        converted["global_step"],
    )
    return str(target)


def set_batch_size(data: DictConfig, world_size: int) -> None:
    """Fill ``data.batch_size`` (per device) from ``data.global_batch_size`` (summed over the ``world_size``
    processes) or the other way round, refusing a global batch that the processes cannot share evenly."""
    per_device, total = data.get("batch_size"), data.get("global_batch_size")
    if total is None:
        if per_device is None:
            raise ValueError("data.batch_size and data.global_batch_size are both null: set one of them")
        data.global_batch_size = per_device * world_size
    else:
        if total % world_size:
            raise ValueError(
                f"data.global_batch_size={total} cannot be split evenly over {world_size} processes "
                "(trainer.devices x trainer.num_nodes): choose a number of devices that divides it"
            )
        if per_device is not None and per_device * world_size != total:
            raise ValueError(
                f"data.batch_size={per_device} per device x {world_size} processes != data.global_batch_size="
                f"{total}: set only one of them (the other to null)"
            )
        data.batch_size = total // world_size
    log.info(
        "batch: %d per device x %d process(es) = %d per step (global)",
        data.batch_size,
        world_size,
        data.global_batch_size,
    )


def build_method(cfg: DictConfig, input_shape: dict) -> PretrainModule:
    """The ``method`` option's module with the arguments every method takes (``cfg.module``), its model config
    completed with the data module's ``input_shape``."""
    model = {**OmegaConf.to_container(cfg.model, resolve=True), **input_shape}
    common = OmegaConf.to_container(cfg.module, resolve=True)
    return instantiate(cfg.method, **{**common, "model": model}, _convert_="all")


def run(cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None) -> dict[str, float]:
    """Pre-train with a composed config (plus ``extra_callbacks``); returns the final logged metrics."""
    ensure_writable_dir(output_dir(cfg))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    device = device_type(cfg.trainer.get("accelerator"))
    accel = Accel.from_config(cfg.accel).for_device(device)
    cfg.trainer.precision = resolve_precision(cfg.trainer.precision, device, "trainer.precision")
    loggers, callbacks = instantiate_loggers_and_callbacks(cfg)
    callbacks += list(extra_callbacks or [])
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all")
    set_batch_size(cfg.data, trainer.world_size)
    datamodule = instantiate(cfg.data, patch_size=cfg.model.get("patch_size"), _convert_="all")
    module = accel.apply(build_method(cfg, datamodule.input_shape))
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir(cfg))
    if ckpt_path:
        ckpt_path = continue_from_original(ckpt_path, module, output_dir(cfg))
        log.info("resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


COMMAND = HydraCommand("ecgjepa-train")


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
@COMMAND.task
def main(cfg: DictConfig) -> None:
    log.info("output directory: %s", output_dir(cfg))
    metrics = run(cfg)
    log.info("final metrics: %s", OmegaConf.to_yaml(metrics))


cli = COMMAND.entry(main)

if __name__ == "__main__":
    cli()

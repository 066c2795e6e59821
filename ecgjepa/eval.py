"""``ecgjepa-eval``: evaluation (linear probing, fine-tuning, LP-FT) of a pre-trained encoder on a labelled dataset."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ecgjepa.accel import Accel
from ecgjepa.accel.capability import device_type
from ecgjepa.accel.precision import resolve_precision
from ecgjepa.cli import HydraCommand
from ecgjepa.core.files import ensure_writable_dir, save_npz_atomic, write_text_atomic
from ecgjepa.core.version import VERSION
from ecgjepa.data.labelled import LabelledDataModule
from ecgjepa.formats.files import CheckpointError
from ecgjepa.formats.hub import HUB_SCHEME, is_hub_id
from ecgjepa.formats.resolve import ResolvedEncoder, resolve_encoder
from ecgjepa.metrics import per_class_auroc
from ecgjepa.models.config import ModelConfig
from ecgjepa.modules.classifier import ClassifierModule, ProtocolConfig
from ecgjepa.plots import plot_per_class_auroc, plot_regression, plot_roc_curves
from ecgjepa.utils.hydra import instantiate_loggers_and_callbacks, load_group_option, resolve_ckpt_path
from ecgjepa.utils.paths import conf_dir, register_resolvers

log = logging.getLogger(__name__)
register_resolvers()


def model_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "model").glob("*.yaml"))


@dataclass(frozen=True)
class EncoderChoice:
    """What ``encoder=`` names: a model config (a ``model`` option for random initialisation, or the encoder a
    run or checkpoint holds) and, for the latter, the resolved weights."""

    model: dict[str, Any]
    resolved: ResolvedEncoder | None
    source: str

    @property
    def random_init(self) -> bool:
        return self.resolved is None

    @property
    def method(self) -> str:
        """The pre-training method of the encoder (``random init`` for a model name)."""
        return "random init" if self.resolved is None else self.resolved.method

    @property
    def display_name(self) -> str:
        """How reports name it: ``inception1d (random init)``, or the run (its folder's name), not a path."""
        if self.random_init:
            return f"{self.model.get('name')} (random init)"
        if is_hub_id(self.source):
            return self.source[len(HUB_SCHEME) :]
        path = Path(self.source)
        if path.is_file() or path.name in ("encoder", "checkpoints"):
            path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return path.name


def choose_encoder(spec: str) -> EncoderChoice:
    if spec in model_names() and not Path(spec).exists():
        return EncoderChoice(load_group_option("model", spec), None, f"random init ({spec})")
    resolved = resolve_encoder(spec)
    return EncoderChoice(resolved.config.to_dict(), resolved, spec if is_hub_id(spec) else str(resolved.source))


def apply_model_and_recipe(cfg: DictConfig, choice: EncoderChoice) -> None:
    """Complete ``cfg`` for the chosen model: its declared evaluation windows replace the protocol's (unless the
    command line sets them: ``crops=...`` or ``protocol.crop_*``), and the protocol's recipe
    (``protocol.recipe``; ``source``: the model's own) replaces the protocol's optimisation numbers."""
    name = choice.model.get("name", cfg.encoder)
    if cfg.protocol.random_init and not choice.random_init:
        raise ValueError(
            f"protocol={cfg.protocol.name} trains from random initialisation: set encoder=<model name> "
            f"({', '.join(model_names())}), not {choice.source}"
        )
    crops_chosen = overridden_keys("protocol") & {"crop_duration", "crop_stride"} or "crops" in chosen_groups()
    for key in ("crop_duration", "crop_stride"):
        if choice.model.get(key) is not None and not crops_chosen:
            cfg.protocol[key] = choice.model[key]
    check_windows(choice.model, cfg.protocol)
    recipe = cfg.protocol.recipe
    if recipe == "source":
        recipe = choice.model.get("recipe")
        if recipe is None:
            raise ValueError(f"protocol.recipe=source: {name} has no recipe of its own; name one of {recipe_names()}")
    if recipe is not None:
        values = load_group_option("recipe", recipe)
        unknown = sorted(set(values) - set(cfg.protocol))
        if unknown:
            raise ValueError(f"recipe={recipe}: unknown protocol key(s) {unknown}")
        chosen = overridden_keys("protocol")  # a key given on the command line wins over the recipe
        cfg.protocol = OmegaConf.merge(cfg.protocol, {k: v for k, v in values.items() if k not in chosen})


def check_windows(model: dict[str, Any], protocol: DictConfig) -> None:
    """Refuse evaluation windows a ViT cannot take, naming the keys: a whole number of its patches, at most its
    input length, and exactly that length for one token per lead."""
    if "arch" in model or "channel_size" not in model or protocol.crop_duration is None:
        return
    config = ModelConfig.from_dict(model)
    rate, crop = config.sampling_frequency, round(protocol.crop_duration * config.sampling_frequency)
    fits = crop == config.channel_size if config.fixed_length else crop % config.patch_size == 0
    if not fits or crop > config.channel_size:
        takes = (
            f"exactly {config.channel_size} samples"
            if config.fixed_length
            else f"a multiple of its {config.patch_size}-sample patches up to {config.channel_size}"
        )
        raise ValueError(
            f"protocol.crop_duration={protocol.crop_duration} s is {crop} samples at {rate} Hz; the encoder "
            f"({config.tokenizer} tokens) takes {takes}: choose other windows (crops=st_mem: 9 s, crops=paper: 2.5 s)"
        )


def overridden_keys(group: str) -> set[str]:
    """The keys of ``group`` that this run's command-line overrides set (``protocol.epochs=2`` -> ``epochs``)."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    keys = {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}
    return {key.split(".")[1] for key in keys if key.startswith(f"{group}.") and key.count(".") >= 1}


def chosen_groups() -> set[str]:
    """The config groups this run's command line chooses an option of (``crops=st_mem`` -> ``crops``)."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return {str(o).split("=", 1)[0].lstrip("+~") for o in overrides if "." not in str(o).split("=", 1)[0]}


def recipe_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "recipe").glob("*.yaml"))


def steps_from_epochs(cfg: DictConfig, datamodule: LabelledDataModule) -> None:
    """``protocol.epochs`` as steps for the training folds and batch in use: ``steps``, one validation per epoch
    (``checkpoint_interval``) and no early stop before the last epoch."""
    if cfg.protocol.epochs is None:
        return
    records, batch = len(datamodule.datasets["train"]), cfg.protocol.batch_size
    per_epoch = max(1, records // batch)  # the training loader drops a last partial batch
    cfg.protocol.steps = cfg.protocol.epochs * per_epoch
    cfg.protocol.checkpoint_interval = per_epoch
    cfg.protocol.early_stopping_patience = cfg.protocol.steps
    log.info(
        "%d epochs of %d training records at batch %d: %d steps, validated every %d",
        cfg.protocol.epochs,
        records,
        batch,
        cfg.protocol.steps,
        per_epoch,
    )


def build_module(cfg: DictConfig, datamodule: LabelledDataModule, choice: EncoderChoice) -> ClassifierModule:
    """``choice`` (see :func:`choose_encoder`) as a :class:`ClassifierModule` for the task and protocol."""
    protocol = ProtocolConfig.from_dict(cfg.protocol)
    common = {
        "protocol": OmegaConf.to_container(cfg.protocol, resolve=True),
        "num_classes": datamodule.num_classes,
        "kind": datamodule.kind,
        "sampling_frequency": datamodule.input_rate,
        **datamodule.target_scale(),
        "method": choice.method,
        "inference_precision": resolve_precision(
            cfg.accel.inference_precision, device_type(cfg.trainer.get("accelerator")), "accel.inference_precision"
        ),
    }
    if choice.random_init:
        if protocol.requires_eval_checkpoint:
            raise ValueError(f"protocol={protocol.name} starts from a linear run: set encoder=<linear run dir>")
        model = {**choice.model, **datamodule.input_shape}
        return ClassifierModule(model=model, source=choice.source, **common)
    resolved, model, source = choice.resolved, choice.model, choice.source
    if resolved.classifier_state is not None:
        head_matches = any(k.startswith("attn_pool.") for k in resolved.classifier_state) == protocol.attn_pooling
        if head_matches and resolved.num_classes == datamodule.num_classes:
            log.info("starting from the classifier (encoder + head) of %s", source)
            return ClassifierModule(model=model, classifier_state=resolved.classifier_state, source=source, **common)
        if protocol.requires_eval_checkpoint:
            raise CheckpointError(
                f"{source}: its head ({resolved.num_classes} classes) does not fit protocol={protocol.name} "
                f"on task {datamodule.task} ({datamodule.num_classes} classes)"
            )
        log.info("%s: head does not fit this task/protocol; using its encoder only", source)
    elif protocol.requires_eval_checkpoint:
        raise ValueError(
            f"protocol={protocol.name} starts from a linear run's checkpoint; {source} is a pre-trained encoder"
        )
    else:
        log.info("evaluating the encoder of %s (pre-trained with %s)", source, choice.method)
    return ClassifierModule(model=model, encoder_state=resolved.state, source=source, **common)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def split_arrays(module: ClassifierModule, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets, outputs) of one split of the test pass."""
    result = module.results[split]
    return result["targets"].numpy(), result["outputs"].numpy()


def run_metrics(
    cfg: DictConfig,
    module: ClassifierModule,
    datamodule: LabelledDataModule,
    best: dict[str, float],
    encoder_name: str,
    method: str,
) -> dict[str, Any]:
    """metrics.json's content: what ran, every metric of the validation and test splits, provenance."""
    kind = module.task_kind
    metric = kind.metric
    metrics: dict[str, Any] = {
        "task": datamodule.task,
        "kind": module.kind,
        "protocol": module.protocol.name,
        "encoder": str(cfg.encoder),
        "encoder_name": encoder_name,
        "method": method,
        "seed": cfg.seed,
        "train_fraction": datamodule.train_fraction,
        "leads": list(datamodule.leads),
        "metric": metric,
    }
    for split in ("val", "test"):
        metrics.update({f"{split}_{name}": value for name, value in kind.metrics(*split_arrays(module, split)).items()})
    metrics.update(
        {
            f"val_{metric}": float(best["val"]),
            f"test_{metric}": float(best["test"]),
            "best_step": best.get("step"),
            "classes": datamodule.classes,
            "num_records": {name: len(ds) for name, ds in datamodule.datasets.items()},
        }
    )
    return metrics


def per_class_metrics(datamodule: LabelledDataModule, targets: np.ndarray, outputs: np.ndarray) -> list[dict]:
    per_class = per_class_auroc(targets, outputs)
    return [
        {"class": c, "auroc": float(a), "support": int(s)}
        for c, a, s in zip(datamodule.classes, per_class, targets.sum(axis=0), strict=True)
    ]


def write_plots(out_dir: Path, module: ClassifierModule, datamodule: LabelledDataModule, per_class: list[dict]) -> None:
    """ROC curves and per-class AUROC of the test split; a scatter of predicted against true values for regression."""
    targets, outputs = split_arrays(module, "test")
    plots = out_dir / "plots"
    if not module.task_kind.classification:
        plot_regression(targets[:, 0], outputs[:, 0], datamodule.classes[0], plots / "test.png")
        return
    plot_roc_curves(targets, outputs, datamodule.classes, plots / "roc_curves.png")
    aurocs = [c["auroc"] for c in per_class]
    plot_per_class_auroc(datamodule.classes, aurocs, [c["support"] for c in per_class], plots / "per_class_auroc.png")


def provenance(cfg: DictConfig) -> dict[str, Any]:
    return {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": {
            "ecgjepa": VERSION,
            "torch": torch.__version__,
            "lightning": L.__version__,
            "python": platform.python_version(),
        },
        "git_commit": git_commit(),
    }


def predictor_description(
    module: ClassifierModule, datamodule: LabelledDataModule, thresholds: np.ndarray | None
) -> dict[str, Any]:
    """predictor.json: the classes, their thresholds and the preprocessing that ``ecgjepa-predict`` applies."""
    return {
        "task": datamodule.task,
        "kind": module.kind,
        "classes": datamodule.classes,
        "thresholds": None if thresholds is None else thresholds.tolist(),
        "sampling_frequency": datamodule.fs,
        "record_samples": datamodule.length,
        "min_record_samples": datamodule.min_length,
        "leads": list(datamodule.leads),
        "input_rate": datamodule.input_rate,
        "band_pass": list(datamodule.conditioning.band_pass) if datamodule.conditioning.band_pass else None,
        "standardise": datamodule.conditioning.standardise,
        "mean": datamodule.mean.tolist(),
        "std": datamodule.std.tolist(),
    }


def write_outputs(
    out_dir: Path,
    cfg: DictConfig,
    module: ClassifierModule,
    datamodule: LabelledDataModule,
    best: dict[str, float],
    encoder_name: str,
    method: str,
) -> dict[str, Any]:
    """``metrics.json``, ``predictions.npz`` (keys read by the original's bootstrap script), ``predictor.json``
    (per-class thresholds with the best validation F1) and the plots."""
    val_targets, val_outputs = split_arrays(module, "val")
    test_targets, test_outputs = split_arrays(module, "test")
    thresholds = module.task_kind.thresholds(val_targets, val_outputs)
    metrics = run_metrics(cfg, module, datamodule, best, encoder_name, method)
    per_class: list[dict] = []
    if module.task_kind.classification:
        per_class = metrics["per_class"] = per_class_metrics(datamodule, test_targets, test_outputs)
        metrics.update(datamodule.test_metrics(test_targets, test_outputs, thresholds))
    write_plots(out_dir, module, datamodule, per_class)
    metrics.update(provenance(cfg))
    save_npz_atomic(
        out_dir / "predictions.npz",
        val_targets=val_targets,
        val_predictions=val_outputs,
        test_targets=test_targets,
        test_predictions=test_outputs,
    )
    write_text_atomic(
        out_dir / "predictor.json", json.dumps(predictor_description(module, datamodule, thresholds), indent=2)
    )
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate one encoder on one task with one protocol and seed; returns metrics.json's content."""
    out_dir = Path(cfg.paths.output_dir)
    if (out_dir / "metrics.json").is_file():
        log.info("%s already has metrics.json: skipping this finished run", out_dir)
        return json.loads((out_dir / "metrics.json").read_text())
    ensure_writable_dir(out_dir)
    L.seed_everything(cfg.seed, workers=True)
    device = device_type(cfg.trainer.get("accelerator"))
    accel = Accel.from_config(cfg.accel).for_device(device)  # checks the precisions before the data is loaded
    cfg.trainer.precision = resolve_precision(cfg.trainer.precision, device, "trainer.precision")
    cfg.accel.inference_precision = accel.inference_precision
    choice = choose_encoder(str(cfg.encoder))
    apply_model_and_recipe(cfg, choice)
    model_input = {
        "input_rate": choice.model.get("sampling_frequency"),
        "band_pass": choice.model.get("band_pass"),
        "standardise": choice.model.get("standardise", "dataset"),
    }
    datamodule: LabelledDataModule = instantiate(cfg.dataset, **model_input, _convert_="all")
    datamodule.setup("fit")
    steps_from_epochs(cfg, datamodule)
    module = accel.apply(build_module(cfg, datamodule, choice))
    loggers, callbacks = instantiate_loggers_and_callbacks(cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all")
    trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), out_dir))
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
    best = {
        "val": trainer.callback_metrics["test/val_score"],
        "test": trainer.callback_metrics["test/score"],
        "step": int(torch.load(best_path, weights_only=True)["global_step"]) if best_path else trainer.global_step,
    }
    if trainer.is_global_zero:
        metrics = write_outputs(out_dir, cfg, module, datamodule, best, choice.display_name, choice.method)
        name = {"r2": "R²", "auroc": "macro AUROC"}[module.task_kind.metric]
        log.info("test %s %.4f (val %.4f, best step %s)", name, best["test"], best["val"], best["step"])
        return metrics
    return {}


COMMAND = HydraCommand("ecgjepa-eval")


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
@COMMAND.task
def main(cfg: DictConfig) -> None:
    if HydraConfig.get().mode.name == "MULTIRUN" and cfg.trainer.get("strategy") == "ddp":
        raise ValueError(
            "a Hydra multirun cannot launch DDP jobs (trainer=ddp): run the seeds one by one, "
            "or use a single device per job"
        )
    run(cfg)


cli = COMMAND.entry(main)

if __name__ == "__main__":
    cli()

"""Hydra glue: compose configs outside the CLI, instantiate dict-valued groups (callbacks, loggers) and find
resume checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

from ecgjepa.utils.paths import conf_dir

log = logging.getLogger(__name__)


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a primary config ('train', 'eval') as the CLI would, with the Hydra runtime's output directory
    set to ``output_dir``: for tests, benchmarks and notebooks that call ``run`` directly."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def load_group_option(group: str, name: str) -> dict[str, Any]:
    """The option ``name`` of config group ``group`` on its own (its ``defaults`` of the same group merged
    in order), without composing a whole primary config."""
    path = conf_dir() / group / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
        raise ValueError(f"{group}={name}: no such option; expected one of {options}")
    own = OmegaConf.load(path)
    defaults = [str(entry) for entry in own.pop("defaults", [])]
    if "_self_" not in defaults:  # Hydra's rule: the option's own keys come last
        defaults.append("_self_")
    merged = OmegaConf.create()
    for entry in defaults:
        merged = OmegaConf.merge(merged, own if entry == "_self_" else _default_entry(group, entry))
    return OmegaConf.to_container(merged, resolve=True)


def _default_entry(group: str, entry: str) -> dict[str, Any]:
    """An entry of an option's defaults: another option of ``group``, or ``/other_group/option@_here_``."""
    if not entry.startswith("/"):
        return load_group_option(group, entry)
    path, _, package = entry.partition("@")
    if package != "_here_":
        raise ValueError(f"{group}: the default {entry!r} is not merged into the option itself (@_here_)")
    other_group, _, option = path.strip("/").rpartition("/")
    return load_group_option(other_group, option)


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a ``_target_`` of a mapping such as ``callbacks`` or ``logger``."""
    if not cfg:
        return []
    objects = []
    for name, entry in cfg.items():
        if entry is None:
            continue
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise ValueError(f"config entry '{name}' needs a _target_, got {entry}")
        objects.append(instantiate(entry, _convert_="all"))
    return objects


def instantiate_loggers_and_callbacks(cfg: DictConfig) -> tuple[list[Any], list[Any]]:
    """The ``logger`` and ``callbacks`` groups of ``cfg``. Callbacks that only write to a logger (the
    learning-rate monitor) are left out when there is none, so that ``logger=none`` runs as it is."""
    loggers = instantiate_dict(cfg.get("logger"))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return loggers, callbacks


def checkpoint_is_readable(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any failure means "not usable", the caller reports it
        return False
    return True


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """Turn ``last`` / a run directory / a file into a checkpoint file to resume from.

    ``last`` looks in ``<output_dir>/checkpoints``; a directory argument is searched the same way
    (``<dir>/checkpoints`` or the directory itself). The newest *readable* checkpoint wins, so a file
    half-written by a killed process is skipped.
    """
    if ckpt_path in (None, ""):
        return None
    target = Path(output_dir) if ckpt_path == "last" else Path(ckpt_path)
    if target.is_file():
        return str(target)
    if not target.is_dir():
        raise FileNotFoundError(f"ckpt_path={ckpt_path!r}: {target} is neither a checkpoint file nor a run directory")
    folder = target / "checkpoints" if (target / "checkpoints").is_dir() else target
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in candidates:
        if checkpoint_is_readable(candidate):
            return str(candidate)
    if ckpt_path == "last":
        if candidates:
            log.warning(
                "ckpt_path=last: none of %d checkpoint(s) in %s is readable; starting fresh", len(candidates), folder
            )
        return None  # nothing to resume: start fresh
    raise FileNotFoundError(f"ckpt_path={ckpt_path!r}: no readable *.ckpt in {folder}")

"""Every option of every config group runs for two steps, combined with the defaults of the other groups.

Options equal to a group's default are the default run. Data options read dumps that ``data_prep`` made from
the real records in tests/data (the sources without real records here read a stand-in dump, see
``STAND_IN_DUMPS``). ``trainer=ddp`` runs as two processes in tests/test_train.py; ``trainer=gpu`` needs CUDA.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from ecgjepa.cli import user_error
from ecgjepa.eval import run as eval_run
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import compose_config
from ecgjepa.utils.paths import conf_dir
from tests.helpers import DATA, STAND_IN_DUMPS


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def defaults(config: str) -> dict[str, str]:
    """The default option of each group of the primary config ``config``."""
    entries = OmegaConf.load(conf_dir() / f"{config}.yaml").defaults
    return {k: v for entry in entries if isinstance(entry, dict) for k, v in entry.items() if v is not None}


def cases(config: str, groups: tuple[str, ...], other_entry_point: set[str]) -> list[tuple[str, str]]:
    chosen = defaults(config)
    found = [("default", "")]
    for group in groups:
        found += [
            (group, option)
            for option in options(group)
            if chosen.get(group) != option and f"{group}={option}" not in other_entry_point
        ]
    return found


TRAIN_GROUPS = ("model", "data", "method", "optim", "trainer", "logger", "callbacks", "experiment", "debug")
EVAL_GROUPS = ("task", "protocol", "crops", "dataset", "trainer", "logger", "callbacks")
# Options of a shared group that belong to the other command.
EVAL_ONLY = {"callbacks=eval"}
# The supervised baselines' networks: ecgjepa-train (JEPA) refuses them by name.
BASELINE_MODELS = {
    f"model={o}" for o in options("model") if "arch" in OmegaConf.load(conf_dir() / "model" / f"{o}.yaml")
}
TRAIN_ONLY = {"callbacks=pretrain", "callbacks=pretrain_probe"}


def special(group: str, option: str) -> None:
    if group == "trainer" and option == "ddp":
        pytest.skip("trainer=ddp starts two processes: tests/test_train.py::test_two_process_ddp_on_cpu_shares_...")
    if group == "trainer" and option == "gpu" and not torch.cuda.is_available():
        pytest.skip("trainer=gpu needs a CUDA device")


@pytest.fixture(scope="module")
def data_root(source_dumps: Path, sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dumps of every source plus the bundled sample's, as ``paths.data_dir`` expects them."""
    root = tmp_path_factory.mktemp("root")
    for dump in source_dumps.iterdir():
        (root / dump.name).symlink_to(dump)
    (root / "sample").symlink_to(sample_data_dir / "sample")
    return root


@pytest.fixture
def quiet_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """W&B offline in the test's folder; the run is closed afterwards so that no later test reuses it."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    wandb.finish()


@pytest.mark.parametrize(("group", "option"), cases("train", TRAIN_GROUPS, EVAL_ONLY), ids=lambda v: v or "defaults")
def test_every_pretraining_option_runs(group: str, option: str, data_root: Path, tmp_path: Path, quiet_wandb) -> None:
    special(group, option)
    overrides = [f"{group}={option}"] if option else []
    if f"{group}={option}" in BASELINE_MODELS:
        cfg = compose_config("train", [*overrides, f"paths.data_dir={data_root}"], tmp_path)
        with pytest.raises(Exception, match="this model has no model.patch_size") as raised:
            train_run(cfg)
        assert user_error(raised.value) is not None
        return
    if option == "folder":
        overrides.append("data.name=own_corpus")
    cfg = compose_config("train", [*overrides, f"paths.data_dir={data_root}"], tmp_path)
    sources = set(cfg.data.sources)
    small = ["trainer.max_steps=2", "data.global_batch_size=null", "data.batch_size=2", "data.num_workers=0"]
    small += [f"+data.sources.{name}.dump={stand_in}" for name, stand_in in STAND_IN_DUMPS.items() if name in sources]
    if "online_probe" in (cfg.get("callbacks") or {}):
        small += ["callbacks.online_probe.max_train_records=16", "callbacks.online_probe.max_val_records=16"]
    cfg = compose_config("train", [*overrides, f"paths.data_dir={data_root}", *small], tmp_path)
    metrics = train_run(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    if "model_checkpoint" in (cfg.get("callbacks") or {}):
        assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.fixture(scope="module")
def linear_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An attentive-probe run on the sample, the starting point of ``protocol=finetune_after_linear``."""
    out = tmp_path_factory.mktemp("linear")
    eval_run(compose_config("eval", eval_overrides(data_root), out))
    return out


def eval_overrides(data_root: Path, *overrides: str) -> list[str]:
    """``overrides`` on top of a tiny random-init encoder and the bundled sample, for two steps."""
    fixed = {"encoder": "vit_tiny", "dataset": "ptbxl_sample"}
    given = {item.split("=", 1)[0] for item in overrides}
    return [
        *(f"{key}={value}" for key, value in fixed.items() if key not in given),
        *overrides,
        f"paths.data_dir={data_root}",
        "protocol.steps=2",
        "protocol.checkpoint_interval=2",
        "protocol.batch_size=8",
        "dataset.num_workers=0",
    ]


def sex_labels(folder: Path) -> Path:
    table = pd.read_csv(DATA / "ptbxl" / "ptbxl_database.csv.gz", index_col="ecg_id").loc[1:40]
    path = folder / "sex.csv"
    records = [os.path.relpath(DATA / "ptbxl" / name, folder) for name in table["filename_hr"]]
    pd.DataFrame({"record": records, "sex": table["sex"].map({0: "male", 1: "female"})}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("group", "option"), cases("eval", EVAL_GROUPS, TRAIN_ONLY), ids=lambda v: v or "defaults")
def test_every_evaluation_option_runs(
    group: str, option: str, data_root: Path, linear_run: Path, tmp_path: Path, quiet_wandb
) -> None:
    """With a tiny random-init encoder and the bundled sample."""
    special(group, option)
    overrides = [f"{group}={option}"] if option else []
    if option == "finetune_after_linear":
        overrides.append(f"encoder={linear_run}")
    if option == "supervised":  # a baseline from random init, two steps instead of its recipe's epochs
        overrides += ["encoder=xresnet1d50", "protocol.epochs=null"]
    if option in ("hhi_aml_linear", "hhi_aml_finetune"):  # the source's protocols of its own network
        overrides += ["encoder=xresnet1d50", "protocol.epochs=null"]
    if option in ("cpc_head_only", "cpc_finetune"):
        head_only = [f"{group}=cpc_head_only", "encoder=fc_lstm", "protocol.epochs=null"]
        if option == "cpc_head_only":
            overrides = head_only
        else:  # the second stage starts from the first's checkpoint
            eval_run(compose_config("eval", eval_overrides(data_root, *head_only), tmp_path / "head_only"))
            overrides += [f"encoder={tmp_path / 'head_only'}", "protocol.epochs=null"]
    root = data_root
    if option == "ptbxl":  # the sample's 500 records as a full PTB-XL dump (<root>/ptbxl), with its absent classes
        root = data_root / "sample"
        overrides.append("dataset.absent_classes=drop")
    if (group, option) == ("dataset", "challenge2021"):  # the Challenge sources with records here
        overrides += ["dataset.sources=[cpsc,georgia,ningbo,chapman_shaoxing]", "dataset.absent_classes=drop"]
    if (group, option) == ("dataset", "csv"):  # the PTB-XL records' sex, from the metadata
        overrides.append(f"dataset.path={sex_labels(tmp_path)}")
    cfg = compose_config("eval", eval_overrides(root, *overrides), tmp_path)
    metrics = eval_run(cfg)
    assert 0.0 <= metrics["test_auroc"] <= 1.0
    assert (tmp_path / "metrics.json").is_file() and os.listdir(tmp_path / "plots")

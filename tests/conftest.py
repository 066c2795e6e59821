"""Shared fixtures: the real data beside the repo, the bundled sample as a dump, composed configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from ecgjepa.utils.hydra import compose_config
from ecgjepa.utils.paths import register_resolvers

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "original"

register_resolvers()


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root as ``make install`` leaves it: ``<root>/sample/ptbxl`` is the bundled sample's dump."""
    root = tmp_path_factory.mktemp("data")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep",
            "ptbxl",
            "--raw",
            str(REPO / "sample_data" / "ptbxl"),
            "--rate",
            "100",
            "--out",
            str(root / "sample"),
            "--workers",
            "1",
            "--no-progress",
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    return root


@pytest.fixture
def train_cfg(tmp_path: Path, sample_data_dir: Path):
    """Factory: a fast CPU pre-training config on the sample dump, writing into ``tmp_path``."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        base = ["debug=fast", f"paths.data_dir={sample_data_dir}"]
        return compose_config("train", [*base, *overrides], output_dir or tmp_path)

    return make


@pytest.fixture(scope="session")
def tiny_encoder_run(tmp_path_factory: pytest.TempPathFactory, sample_data_dir: Path) -> Path:
    """A pre-training run directory of a tiny ViT (5 steps on the sample), shared by the eval tests."""
    from ecgjepa.train import run

    out = tmp_path_factory.mktemp("pretrain")
    run(compose_config("train", ["debug=fast", f"paths.data_dir={sample_data_dir}"], out))
    return out


@pytest.fixture
def eval_cfg(tmp_path: Path, sample_data_dir: Path):
    """Factory: a short CPU evaluation on the bundled sample, writing into ``tmp_path``."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        base = [
            "dataset=ptbxl_sample",
            f"paths.data_dir={sample_data_dir}",
            "trainer=cpu",
            "logger=none",
            "callbacks.lr_monitor=null",
            "task=superdiagnostic",
            "protocol.steps=6",
            "protocol.checkpoint_interval=3",
            "protocol.batch_size=32",
        ]
        return compose_config("eval", [*base, *overrides], output_dir or tmp_path)

    return make

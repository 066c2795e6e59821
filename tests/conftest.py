"""Shared fixtures: the real records in tests/data, the original's reference checkpoints, the bundled sample
as a dump, composed configs (helpers: tests/helpers.py)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from data_prep.common import dump_folder, dump_source
from ecgjepa.utils.hydra import compose_config
from ecgjepa.utils.paths import register_resolvers
from tests.helpers import (
    DATA,
    REPO,
    SAMPLE,
    TINY,
    VIT_XS,
    OriginalFixture,
    make_ptbxl_raw,
    require,
    short_evaluation,
)


@pytest.fixture(params=[TINY, VIT_XS], ids=lambda f: f.name, scope="module")
def original(request: pytest.FixtureRequest) -> OriginalFixture:
    """Each set of the original's reference checkpoints: the shipped tiny one, and ViT-XS where present."""
    return require(request.param)


@pytest.fixture(scope="session")
def ptbxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PTB-XL folder in the release layout: the full v1.0.1 metadata, ecg_id 1-40 at 500 Hz, the bundled
    sample's ecg_id 1-500 at 100 Hz, and ecg_id 1000 and 1365 at 100 Hz."""
    root = tmp_path_factory.mktemp("ptbxl")
    with (
        gzip.open(DATA / "ptbxl" / "ptbxl_database.csv.gz", "rb") as src,
        open(root / "ptbxl_database.csv", "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    for name in ("scp_statements.csv", "LICENSE.txt"):
        shutil.copy(DATA / "ptbxl" / name, root / name)
    (root / "records500").symlink_to(DATA / "ptbxl" / "records500")
    (root / "records100").mkdir()
    (root / "records100" / "00000").symlink_to(SAMPLE / "records100" / "00000")
    (root / "records100" / "01000").symlink_to(DATA / "ptbxl" / "records100" / "01000")
    return root


register_resolvers()


@pytest.fixture
def ema_momenta(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The momentum of every EMA update of the target encoder, in order."""
    from ecgjepa.callbacks import target_momentum

    momenta: list[float] = []
    real = target_momentum.ema_update

    def recording(target, online, momentum: float) -> None:
        momenta.append(momentum)
        real(target, online, momentum)

    monkeypatch.setattr(target_momentum, "ema_update", recording)
    return momenta


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def source_dumps(tmp_path_factory: pytest.TempPathFactory, ptbxl_dir: Path) -> Path:
    """A data root with the dumps of ptbxl (ecg_id 1-40, 500 Hz), mimic_iv_ecg, cpsc, georgia, ningbo,
    chapman_shaoxing and ptb, and a folder source ``own_corpus``, made by ``data_prep`` from tests/data."""
    root = tmp_path_factory.mktemp("dumps")
    raw_ptbxl = make_ptbxl_raw(tmp_path_factory.mktemp("ptbxl_raw"), range(1, 41), ptbxl_dir)
    raws = {
        "ptbxl": raw_ptbxl,
        "mimic_iv_ecg": DATA / "mimic_iv_ecg",
        "cpsc": DATA / "challenge2021" / "cpsc_2018",
        "georgia": DATA / "challenge2021" / "georgia",
        "ningbo": DATA / "challenge2021" / "ningbo",
        "chapman_shaoxing": DATA / "challenge2021" / "chapman_shaoxing",
        "ptb": DATA / "challenge2020" / "ptb",
    }
    for slug, raw in raws.items():
        dump_source(slug, raw, root, workers=1, progress=False, log=lambda message: None)
    # the CPSC records (10-25 s) as a corpus of one's own
    dump_folder("own_corpus", raws["cpsc"], root, workers=1, progress=False, log=lambda message: None)
    return root


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
            str(SAMPLE),
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


@pytest.fixture(scope="session")
def tiny_classifier_run(
    tmp_path_factory: pytest.TempPathFactory, sample_data_dir: Path, tiny_encoder_run: Path
) -> Path:
    """A short attentive-probe evaluation (superdiagnostic) of the tiny ViT, shared by the export tests."""
    from ecgjepa.eval import run

    out = tmp_path_factory.mktemp("linear")
    run(compose_config("eval", [*short_evaluation(sample_data_dir), f"encoder={tiny_encoder_run}"], out))
    return out


@pytest.fixture
def eval_cfg(tmp_path: Path, sample_data_dir: Path):
    """Factory: a short CPU evaluation on the bundled sample, writing into ``tmp_path``."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose_config("eval", [*short_evaluation(sample_data_dir), *overrides], output_dir or tmp_path)

    return make

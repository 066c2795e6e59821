"""The pre-training mixture (ecgjepa.data.pretrain): weights, sources and their keys are checked and named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecgjepa.train import run as train_run
from tests.helpers import files_under


def test_mixture_weights_must_sum_to_one(train_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"data.sources weights must sum to 1, got 0.5 from \{'ptbxl': 0.5\}"):
        train_run(train_cfg("data.sources.ptbxl.weight=0.5", output_dir=tmp_path / "out"))
    with pytest.raises(Exception, match=r"data.sources.ptbxl.weight must be > 0, got -1"):
        train_run(train_cfg("data.sources.ptbxl.weight=-1", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []


def test_unknown_source_names_the_missing_dump_and_the_make_command(
    train_cfg, sample_data_dir: Path, tmp_path: Path
) -> None:
    missing = re.escape(str(sample_data_dir / "sample" / "foo" / "signals.npy"))
    with pytest.raises(
        FileNotFoundError,
        match=rf"no dump for source 'foo': {missing} does not exist.*python -m data_prep foo --raw RAW_DIR",
    ):
        train_run(
            train_cfg("data.sources.ptbxl.weight=0.5", "+data.sources.foo.weight=0.5", output_dir=tmp_path / "out")
        )
    assert files_under(tmp_path / "out") == []


def test_unknown_source_key_is_named(train_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"data.sources.ptbxl: .*unexpected keyword argument 'wieght'"):
        train_run(train_cfg("+data.sources.ptbxl.wieght=1", output_dir=tmp_path / "out"))

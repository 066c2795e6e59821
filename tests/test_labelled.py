"""The labelled data modules' shared rules (ecgjepa.data.labelled): classes without positives in a split and
crops longer than the records are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from ecgjepa.eval import run as eval_run
from tests.helpers import files_under


def test_class_without_positive_in_the_validation_fold_is_named(eval_cfg, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class 'HYP' has no positive record in the validation fold 10"):
        eval_run(
            eval_cfg(
                "encoder=vit_tiny",
                "task=st_mem",
                "dataset.val_fold=10",
                "dataset.test_fold=8",
                "dataset.absent_classes=error",
                output_dir=tmp_path,
            )
        )
    assert files_under(tmp_path) == []


def test_crop_longer_than_the_record_is_refused(eval_cfg, sample_data_dir: Path, tmp_path: Path) -> None:
    message = r"crop_duration=12 s \(6000 samples\) is longer than the records \(10.0 s = 5000 samples\)"
    dataset = OmegaConf.to_container(eval_cfg("encoder=vit_tiny", "protocol.crop_duration=12").dataset, resolve=True)
    data_module = get_class(dataset.pop("_target_"))
    with pytest.raises(ValueError, match=message):
        data_module(**dataset)
    with pytest.raises(Exception, match=message):
        eval_run(eval_cfg("encoder=vit_tiny", "protocol.crop_duration=12", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []

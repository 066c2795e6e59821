"""The pre-training mixture (ecgjepa.data.pretrain): weights, sources and their keys are checked and named."""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.data.pretrain import MixtureBatches, patient_keys
from ecgjepa.train import run as train_run
from tests.helpers import SAMPLE, files_under


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


def mixture(train_cfg, *overrides: str) -> MixtureBatches:
    """The batch stream ``ecgjepa-train`` would read with these overrides (64 samples a batch, in-process)."""
    cfg = train_cfg("data.batch_size=64", "data.num_workers=0", *overrides)
    data = instantiate(cfg.data, patch_size=cfg.model.get("patch_size"), _convert_="all")
    data.setup()
    return data.train_dataloader().dataset


def test_lead_dropout_draws_the_configured_subsets_at_the_configured_rate(train_cfg) -> None:
    dropping = mixture(train_cfg, "data.lead_dropout.probability=0.5", "data.lead_dropout.subsets=[[I],[I,II]]")
    plain = mixture(train_cfg)
    kept_sets: list[tuple[int, ...]] = []
    for index in range(8):
        x, y = dropping.make_batch(index)[0], plain.make_batch(index)[0]
        kept = (x != 0).any(dim=-1)  # (B, 12) leads with a non-zero sample
        kept_sets += [tuple(np.flatnonzero(row.numpy())) for row in kept]
        torch.testing.assert_close(x, y * kept[:, :, None])  # the same crops; only the dropped leads differ
    counts = Counter(kept_sets)
    assert set(counts) == {tuple(range(12)), (0,), (0, 1)}
    assert abs(counts[tuple(range(12))] / len(kept_sets) - 0.5) < 0.08  # 512 samples, p = 0.5
    assert abs(counts[(0,)] - counts[(0, 1)]) < 0.2 * len(kept_sets)
    again = mixture(train_cfg, "data.lead_dropout.probability=0.5", "data.lead_dropout.subsets=[[I],[I,II]]")
    again.start_batch = 5  # a resumed run's stream starts at its step's batch
    torch.testing.assert_close(next(iter(again))[0], dropping.make_batch(5)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.lead_dropout.probability=1.5"], r"data.lead_dropout.probability: expected a number in \[0, 1\]"),
        (
            ["data.lead_dropout.probability=0.5", "data.lead_dropout.subsets=[[I,X]]"],
            r"data.lead_dropout.subsets: unknown \['X'\]",
        ),
    ],
)
def test_bad_lead_dropout_is_named(train_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(Exception, match=message):
        train_run(train_cfg(*overrides))


def test_patient_groups_join_the_records_of_one_patient(train_cfg, sample_data_dir: Path) -> None:
    """The bundled sample lists 466 patients for its 500 records (patient 13619 has eight, ecg_id 17-39): each crop
    of a batch carries its record's patient key, the same for every record of one patient."""
    stream = mixture(train_cfg, "method=cmsc", "model=vit_tiny")
    dump = stream.dumps[0]
    patients = pd.read_csv(SAMPLE / "ptbxl_database.csv").set_index("ecg_id")["patient_id"]
    expected = patients.loc[dump.index["record_id"]].to_numpy()
    keys = stream.groups[0]
    assert len(set(keys)) == len(set(expected)) == 466
    for patient in (13619.0, expected[0]):
        assert len(set(keys[expected == patient])) == 1
    assert not set(keys[expected == 13619.0]) & set(keys[expected != 13619.0])
    for index in (0, 3):
        signals, groups = stream.make_batch(index)
        choice, rows, _ = stream.draw(index)
        assert signals.shape[0] == groups.shape[0] == 64 and groups.dtype == torch.int64
        np.testing.assert_array_equal(groups.numpy(), keys[rows])
        np.testing.assert_array_equal(choice, 0)


def test_a_dump_without_patients_groups_by_recording(sample_data_dir: Path, tmp_path: Path, caplog) -> None:
    shutil.copytree(sample_data_dir / "sample" / "ptbxl", tmp_path / "ptbxl")
    index = pd.read_csv(tmp_path / "ptbxl" / "index.csv")
    index.drop(columns="patient").to_csv(tmp_path / "ptbxl" / "index.csv", index=False)
    dump = SourceDump(tmp_path, "ptbxl")
    with caplog.at_level(logging.WARNING):
        (keys,) = patient_keys([dump], ["ptbxl"])
    assert len(set(keys)) == 500
    assert "source 'ptbxl' lists no patient ids" in caplog.text and str(tmp_path / "ptbxl" / "index.csv") in caplog.text
    assert f"python -m data_prep ptbxl --raw RAW_DIR --out {tmp_path} --force" in caplog.text


def test_jepa_trains_on_batches_that_carry_patients(train_cfg, tmp_path: Path) -> None:
    train_run(train_cfg("data.patient_groups=true", output_dir=tmp_path / "out"))
    assert (tmp_path / "out" / "checkpoints" / "last.ckpt").is_file()

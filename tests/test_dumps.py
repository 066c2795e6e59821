"""Reading dumps (ecgjepa.data.dumps and the data modules on top): a missing data root, a dump of the wrong
layout, sidecar files that do not match it, an empty dump and non-finite values are named with the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.core.errors import DumpError
from ecgjepa.data.labelled import DumpRecords, RecordDataset
from ecgjepa.eval import run as eval_run
from tests.helpers import Edit, files_under, make_dump, pretrain_on


def test_missing_data_root_of_the_evaluation_is_named(eval_cfg, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = re.escape(str(tmp_path / "nowhere"))
    with pytest.raises(
        FileNotFoundError,
        match=rf"data directory {missing} does not exist; .* python -m data_prep ptbxl --raw RAW_DIR --out {missing}",
    ):
        eval_run(
            eval_cfg("encoder=vit_tiny", "dataset=ptbxl", f"paths.data_dir={tmp_path / 'nowhere'}", output_dir=out)
        )
    assert files_under(out) == []


def as_float32(signals, index, meta):
    return signals.astype(np.float32), index, meta


def three_d(signals, index, meta):
    return signals[:, :, None], index, meta


def eight_leads(signals, index, meta):
    return signals, index, {**meta, "leads": meta["leads"][:8]}


def at_100_hz(signals, index, meta):
    return signals, index, {**meta, "sampling_frequency": 100}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (as_float32, r"signals.npy: expected a float16 array of shape \(samples, 12\), got float32 \(10000, 12\)"),
        (three_d, r"signals.npy: expected a float16 array of shape \(samples, 12\), got float16 \(10000, 12, 1\)"),
        (eight_leads, r"meta.json: leads \['I', .*'V2'\] differ from the canonical \['I', .*'V6'\]"),
        (at_100_hz, r"ptbxl: sampling_frequency 100 Hz, but data.sampling_frequency is 500"),
    ],
    ids=["float32", "3-d", "8-leads", "100-hz"],
)
def test_dump_of_the_wrong_layout_is_named(
    train_cfg, sample_data_dir: Path, tmp_path: Path, edit: Edit, message: str
) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", edit, records=2)
    with pytest.raises(DumpError, match=message) as err:
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert str(data / "ptbxl") in str(err.value)  # the message names the dump
    assert files_under(tmp_path / "out") == []


def past_the_end(signals, index, meta):
    return signals[:7000], index, meta


def without_length(signals, index, meta):
    return signals, index.drop(columns=["length"]), meta


def without_meta(signals, index, meta):
    return signals, index, None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (past_the_end, r"index.csv does not match .*signals.npy: records end at sample 10000 but the array has 7000"),
        (without_length, r"index.csv: missing column\(s\) \['length'\]; expected at least \['record_id', 'start'"),
        (without_meta, r"meta.json is missing; re-run: python -m data_prep ptbxl --raw RAW_DIR --out "),
    ],
    ids=["index-past-the-end", "index-column-missing", "meta-missing"],
)
def test_sidecar_files_not_matching_the_dump_are_named(
    train_cfg, sample_data_dir: Path, tmp_path: Path, edit: Edit, message: str
) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", edit, records=2)
    with pytest.raises(DumpError, match=message):
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_empty_dump_is_refused(train_cfg, sample_data_dir: Path, tmp_path: Path) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", lambda s, i, m: (s[:0], i.iloc[:0], m), records=2)
    with pytest.raises(DumpError, match=re.escape(f"{data / 'ptbxl' / 'index.csv'}: the dump holds no records")):
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def nan_in_record(position: int) -> Edit:
    def edit(signals, index, meta):
        signals[int(index["start"].iat[position]) + 2500, 3] = np.nan
        return signals, index, meta

    return edit


def test_non_finite_pretraining_crop_names_the_file_and_record(
    train_cfg, sample_data_dir: Path, tmp_path: Path
) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", nan_in_record(1), records=2)
    record_id = pd.read_csv(data / "ptbxl" / "index.csv")["record_id"].iat[1]
    message = f"non-finite values in {data / 'ptbxl' / 'signals.npy'} record {record_id!r} (row 1)"
    with pytest.raises(DumpError, match=re.escape(message)):
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_non_finite_ptbxl_record_names_the_file_and_record(eval_cfg, sample_data_dir: Path, tmp_path: Path) -> None:
    index = pd.read_csv(sample_data_dir / "sample" / "ptbxl" / "index.csv")
    row = int(np.flatnonzero(index["fold"] == 1)[0])  # a training record: caught by the statistics
    data = make_dump(sample_data_dir, tmp_path / "data", nan_in_record(row))
    message = f"non-finite values in {data / 'ptbxl' / 'signals.npy'} record {index['record_id'].iat[row]!r}"
    with pytest.raises(DumpError, match=re.escape(message)):
        eval_run(eval_cfg("encoder=vit_tiny", f"dataset.data_dir={data}", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []
    # A validation/test record (outside the statistics) is checked when it is read.
    data = make_dump(sample_data_dir, tmp_path / "small", nan_in_record(1), records=2)
    records = DumpRecords.of(SourceDump(data, "ptbxl"), np.array([0, 1]))
    dataset = RecordDataset(records, np.zeros((2, 5), np.float32), np.zeros(12), np.ones(12), 5000)
    assert torch.isfinite(dataset[0][0]).all()
    with pytest.raises(DumpError, match=re.escape(f"record {index['record_id'].iat[1]!r} (row 1)")):
        dataset[1]

"""What commands read (ecgjepa.core.manifest): manifests of array files made from real records, the domain of
every column, WFDB folders and .npy stacks as ``input=``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.core.manifest import TableError, input_records, read_manifest
from ecgjepa.core.records import read_record, read_wfdb
from tests.helpers import DATA

RECORD = DATA / "ptbxl" / "records500" / "00000" / "00001_hr"


@pytest.fixture
def array_file(tmp_path: Path) -> Path:
    """PTB-XL ecg_id 1 as a (leads, samples) .npy array."""
    np.save(tmp_path / "ecg1.npy", read_wfdb(RECORD).signal.T)
    return tmp_path / "ecg1.npy"


def write_manifest(tmp_path: Path, **row: object) -> Path:
    values = {"file": "ecg1.npy", "sampling_rate": 500, "leads": ",".join(read_wfdb(RECORD).leads), **row}
    pd.DataFrame([values]).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


def test_a_manifest_lists_array_records_read_like_the_wfdb_original(tmp_path: Path, array_file: Path) -> None:
    (ref,) = read_manifest(write_manifest(tmp_path))
    assert ref.record_id == "ecg1.npy" and ref.fs == 500
    record, original = read_record(tmp_path, ref), read_wfdb(RECORD)
    np.testing.assert_array_equal(record.signal, original.signal)
    assert list(record.leads) == list(original.leads)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"sampling_rate": "fast"}, "line 2, column 'sampling_rate': expected a positive number, got 'fast'"),
        ({"sampling_rate": -500}, "line 2, column 'sampling_rate': expected a positive number, got -500"),
        ({"leads": "I,II,X"}, "line 2, column 'leads': unknown lead(s) ['X']"),
        ({"leads": float("nan")}, "line 2, column 'leads': expected comma-separated lead names"),
    ],
)
def test_a_value_outside_its_column_is_named_with_file_line_and_column(
    tmp_path: Path, array_file: Path, row: dict, message: str
) -> None:
    manifest = write_manifest(tmp_path, **row)
    with pytest.raises(TableError, match=re.escape(f"{manifest}: {message}")):
        read_manifest(manifest)


def test_a_manifest_without_its_columns_is_named(tmp_path: Path) -> None:
    pd.DataFrame({"file": ["ecg1.npy"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(TableError, match=re.escape("missing column(s) ['sampling_rate', 'leads']")):
        read_manifest(tmp_path / "m.csv")


def test_inputs_a_folder_a_manifest_or_an_array_stack(tmp_path: Path, array_file: Path) -> None:
    refs, base = input_records(DATA / "ptbxl" / "records100" / "01000", None)
    assert [r.record_id for r in refs] == ["01000_lr", "01365_lr"] and base == DATA / "ptbxl" / "records100" / "01000"
    refs, base = input_records(write_manifest(tmp_path), None)
    assert [r.record_id for r in refs] == ["ecg1.npy"] and base == tmp_path
    stack = np.stack([read_wfdb(RECORD).signal.T[:, :1000]] * 3)
    np.save(tmp_path / "stack.npy", stack)
    refs, _ = input_records(tmp_path / "stack.npy", 250.0)
    assert [r.record_id for r in refs] == ["stack.npy[0]", "stack.npy[1]", "stack.npy[2]"]
    record = read_record(tmp_path, refs[2])
    assert record.fs == 250.0 and record.signal.shape == (1000, 12) and list(record.leads) == list(CANONICAL_LEADS)
    with pytest.raises(FileNotFoundError, match="no record found under"):
        input_records(tmp_path, None)

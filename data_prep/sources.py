"""Per-source constants of the ten pre-training sources and their raw-folder layouts.

Mirrors the class constants of ECG-JEPA `data/datasets/*.py`. The native lead orders are recorded for
reference and for CODE-15 (HDF5 has no lead names); WFDB sources are reordered by the header's
`sig_name`, matched case-insensitively.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecgjepa.core.errors import DataPrepError
from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.core.records import SourceSpec

# NOTE(parity): PTB-XL pre-training statistics use the training folds only (ECG-JEPA data/datasets/ptb_xl.py).
PTBXL_STATS_FOLDS = (1, 2, 3, 4, 5, 6, 7, 8)
MIMIC_LEADS = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")

_CHALLENGE_LAYOUT = (
    "a PhysioNet/CinC Challenge 2021 source folder (e.g. training/{folder}) holding WFDB "
    "'<record>.hea' + '<record>.mat' pairs, at any depth (e.g. g1/E00001.hea)"
)


def _challenge(slug: str, folder: str, fs: float, duration_s: float, **kwargs: object) -> SourceSpec:
    folders = (folder,) if folder == slug else (folder, slug)
    layout = _CHALLENGE_LAYOUT.format(folder=folder)
    return SourceSpec(slug, "challenge2021", fs, CANONICAL_LEADS, duration_s, folders, layout, **kwargs)


SOURCES: dict[str, SourceSpec] = {
    spec.slug: spec
    for spec in (
        SourceSpec(
            "ptbxl",
            "ptbxl",
            500,
            CANONICAL_LEADS,
            10,
            ("ptbxl",),
            "the PTB-XL release: ptbxl_database.csv plus records500/NNNNN/NNNNN_hr.{hea,dat} "
            "(or records100/NNNNN/NNNNN_lr.{hea,dat} with --rate 100)",
            metadata_files=("ptbxl_database.csv", "scp_statements.csv"),
            stats_folds=PTBXL_STATS_FOLDS,
        ),
        SourceSpec(
            "mimic_iv_ecg",
            "mimic_iv_ecg",
            500,
            MIMIC_LEADS,
            10,
            ("mimic_iv_ecg", "mimic-iv-ecg"),
            "the MIMIC-IV-ECG release: record_list.csv (column 'path') plus "
            "files/pNNNN/pSUBJECT/sSTUDY/STUDY.{hea,dat}",
        ),
        SourceSpec(
            "code15",
            "code15",
            400,
            CANONICAL_LEADS,
            10.24,
            ("code15", "code-15"),
            "the CODE-15% release: exams.csv (columns exam_id, trace_file) plus exams_partK.hdf5 files "
            "with datasets 'tracings' (N, 4096, 12) and 'exam_id' (N,)",
            remove_baseline=True,
        ),
        _challenge("chapman_shaoxing", "chapman_shaoxing", 500, 10),
        _challenge("cpsc", "cpsc_2018", 500, 16),
        _challenge("cpsc_extra", "cpsc_2018_extra", 500, 16),
        # NOTE(parity): Georgia drops records shorter than 10 s at dump time (ECG-JEPA data/datasets/georgia.py).
        _challenge("georgia", "georgia", 500, 10, min_length=5000),
        _challenge("ningbo", "ningbo", 500, 10),
        _challenge("ptb", "ptb", 1000, 111),
        _challenge("st_petersburg", "st_petersburg_incart", 257, 1800, remove_baseline=True),
    )
}


def find_source_dir(root: Path, spec: SourceSpec) -> Path | None:
    """The first of `spec.folders` that exists under `root` (layout of `python -m data_prep all`)."""
    for folder in spec.folders:
        if (root / folder).is_dir():
            return root / folder
    return None


def read_listing(csv: Path, columns: list[str], slug: str, dtype: dict[str, str] | type | None = None) -> pd.DataFrame:
    """The ``columns`` of a source's record list ``csv`` (PTB-XL's database, MIMIC-IV-ECG's record list, CODE-15's
    exams), or a :class:`DataPrepError` naming the file and what it lacks."""
    if not csv.is_file():
        raise DataPrepError(f"{csv} not found; expected {SOURCES[slug].layout}")
    header = pd.read_csv(csv, nrows=0).columns
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataPrepError(f"{csv}: missing column(s) {missing}; expected {SOURCES[slug].layout}")
    return pd.read_csv(csv, usecols=columns, dtype=dtype)

"""Per-source constants of the ten pre-training sources (spec §2.1) and the raw-folder layout.

Mirrors the class constants of ECG-JEPA `data/datasets/*.py`. The native lead orders are recorded for
reference and for CODE-15 (HDF5 has no lead names); WFDB sources are reordered by the header's
`sig_name`, matched case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ecgjepa.data.signal import CANONICAL_LEADS

TARGET_FS = 500
# Records per part file are chosen so that one chunk holds about this many 500 Hz samples
# (~24 MB as float16), which bounds memory for 10-s records and 30-min records alike.
CHUNK_SAMPLES = 1_000_000

MIMIC_LEADS = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")

Reader = Literal["ptbxl", "mimic_iv_ecg", "code15", "challenge2021", "folder"]

_CHALLENGE_LAYOUT = (
    "a PhysioNet/CinC Challenge 2021 source folder (e.g. training/{folder}) holding WFDB "
    "'<record>.hea' + '<record>.mat' pairs, at any depth (e.g. g1/E00001.hea)"
)


@dataclass(frozen=True)
class SourceSpec:
    """Constants of one source.

    Attributes:
        slug: dump name and CLI name.
        reader: module of `data_prep` that discovers and reads the raw records.
        fs: native sampling rate in Hz (WFDB headers take precedence when they differ).
        leads: native lead order.
        duration_s: typical record duration in seconds (sizes the default chunk).
        folders: accepted folder names under the root given to `python -m data_prep all`.
        layout: expected raw layout, quoted in error messages.
        remove_baseline: NaN-interpolate and high-pass at native fs before resampling (spec §2.3).
        min_length: records shorter than this many 500 Hz samples are rejected.
        metadata_files: raw metadata files copied next to the dump (PTB-XL: labels and folds).
    """

    slug: str
    reader: Reader
    fs: float
    leads: tuple[str, ...]
    duration_s: float
    folders: tuple[str, ...]
    layout: str
    remove_baseline: bool = False
    min_length: int = 1
    metadata_files: tuple[str, ...] = ()

    @property
    def default_chunk_size(self) -> int:
        return max(1, int(CHUNK_SAMPLES // (self.duration_s * TARGET_FS)))


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
        # NOTE(parity): Georgia drops records shorter than 10 s at dump time (spec §2.2).
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


FOLDER_LAYOUT = (
    "a folder of WFDB records (<name>.hea + .dat/.mat) at any depth, and/or array files (.npy, .h5) listed in a "
    "manifest CSV (--manifest) with columns file, sampling_rate, leads"
)


def folder_spec(name: str, min_seconds: float) -> SourceSpec:
    """The spec of a folder of one's own records dumped as source ``name``: any sampling rate, lead order and
    length; records shorter than ``min_seconds`` are rejected."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--name: expected letters, digits, '_' or '-', got {name!r}")
    if name in SOURCES:
        raise ValueError(f"--name {name} is one of the public sources; choose another name for your corpus")
    return SourceSpec(
        name,
        "folder",
        float("nan"),
        CANONICAL_LEADS,
        10.0,
        (),
        FOLDER_LAYOUT,
        min_length=max(1, round(min_seconds * TARGET_FS)),
    )

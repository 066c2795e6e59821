"""The bundled PTB-XL sample: 500 real records at 100 Hz, dumped on first use so that the defaults run
right after an install."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from ecgjepa.core.dump_format import prepare_command
from ecgjepa.utils.paths import bundled_sample_dir

log = logging.getLogger(__name__)

SAMPLE_RATE = 100  # Hz of the bundled records; the dump resamples them to 500 Hz


def sample_dump_command(data_dir: Path) -> str:
    """The shell command that creates the sample's dump under ``data_dir`` (for messages)."""
    return f"python -m data_prep ptbxl --raw {bundled_sample_dir()} --rate {SAMPLE_RATE} --out {data_dir}"


def ensure_sample_dump(data_dir: str | Path) -> Path:
    """The dump of the bundled sample at ``data_dir/ptbxl``, made first if that folder does not exist (one
    that exists is left as it is, for the dump's own checks to judge).

    Concurrent callers (DDP ranks, parallel jobs) wait on a lock file, and the dump is built in a
    staging folder beside it and moved into place whole: a reader never sees half a dump.
    """
    data_dir = Path(data_dir)
    dump = data_dir / "ptbxl"
    if dump.exists():
        return dump
    from data_prep.common import dump_source  # the readers are only needed for this one-off step

    data_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(data_dir / ".ptbxl.lock"):
        if dump.exists():
            return dump
        log.info("preparing the bundled PTB-XL sample's dump in %s (once)", dump)
        staging = Path(tempfile.mkdtemp(prefix=".ptbxl-", dir=data_dir))
        try:
            dump_source(
                "ptbxl", bundled_sample_dir(), staging, workers=1, rate=SAMPLE_RATE, progress=False, log=log.info
            )
            os.replace(staging / "ptbxl", dump)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dump


def require_data_dir(data_dir: Path, source: str, bundled_sample: bool) -> None:
    """Make the bundled sample's dump if ``data_dir`` is meant to hold it; otherwise refuse a missing
    ``data_dir``, naming the command that creates the dump of ``source`` there."""
    if bundled_sample:
        ensure_sample_dump(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"data directory {data_dir} does not exist; set paths.data_dir=... or ECGJEPA_DATA_DIR, "
            f"and create the dump with: {prepare_command(source, data_dir)}"
        )

"""An evaluation run read back for new records: its trained classifier, its ``predictor.json`` and the
preparation of a record exactly as the run's evaluation data was prepared (``ecgjepa-predict``, ``ecgjepa-explain``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ecgjepa.core.leads import lead_mask, lead_subset
from ecgjepa.core.manifest import input_records
from ecgjepa.core.records import RecordRef, folder_spec, prepared_records
from ecgjepa.data.labelled import model_input
from ecgjepa.data.transforms import Conditioning
from ecgjepa.formats.files import load_file
from ecgjepa.formats.hub import local_path
from ecgjepa.formats.layouts import find_checkpoint
from ecgjepa.modules.classifier import ClassifierModule


def load_run(run: str | Path) -> tuple[ClassifierModule, dict[str, Any]]:
    """The trained classifier (its best checkpoint) and ``predictor.json`` of an evaluation run, an exported
    classifier or a Hub id ``hf://OWNER/NAME[@revision]`` of one."""
    run_dir = local_path(run)
    description = run_dir / "predictor.json"
    if not description.is_file():
        raise FileNotFoundError(
            f"run={run_dir}: no predictor.json; expected the directory of a finished ecgjepa-eval run"
        )
    predictor = json.loads(description.read_text())
    ckpt = load_file(find_checkpoint(run_dir))
    if "hyper_parameters" not in ckpt or "protocol" not in ckpt["hyper_parameters"]:
        raise ValueError(f"run={run_dir}: its checkpoint is not an evaluation checkpoint of ecgjepa-eval")
    module = ClassifierModule(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    return module.eval(), predictor


def run_and_records(args: Mapping[str, str]) -> tuple[ClassifierModule, dict[str, Any], list[RecordRef], Path]:
    """What ``ecgjepa-predict`` and ``ecgjepa-explain`` start from: the classifier and ``predictor.json`` of
    ``run=``, and the records of ``input=`` (a ``.npy`` at ``sampling_frequency=``) with their base folder."""
    module, predictor = load_run(args["run"])
    fs = float(args["sampling_frequency"]) if "sampling_frequency" in args else None
    refs, base = input_records(Path(args["input"]), fs)
    return module, predictor, refs, base


def prepared(
    refs: list[RecordRef], base: Path, predictor: dict[str, Any], rejects: list[tuple[str, str]]
) -> Iterator[tuple[str, np.ndarray]]:
    """(record id, model input) of every usable record: its leads of the run (``leads``; the others zero), from
    one crop up to the run's record length; the others go to ``rejects`` with the reason."""
    fs = predictor["sampling_frequency"]
    # runs written before records of any length and lead subsets: whole records of all twelve leads
    shortest = predictor.get("min_record_samples", predictor["record_samples"])
    leads = lead_subset(predictor.get("leads"))
    spec = folder_spec("predict", shortest / fs, leads)
    mean, std = np.asarray(predictor["mean"], np.float32), np.asarray(predictor["std"], np.float32)
    input_rate = predictor.get("input_rate", fs)  # runs written before models declared their rate: the dumps'
    band_pass = predictor.get("band_pass")
    conditioning = Conditioning(tuple(band_pass) if band_pass else None, predictor.get("standardise", "dataset"))
    mask = lead_mask(leads)
    for record_id, x in prepared_records(refs, base, spec, rejects):
        yield record_id, model_input(x[: predictor["record_samples"]], mean, std, fs, input_rate, conditioning, mask)

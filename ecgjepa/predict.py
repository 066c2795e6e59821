"""``ecgjepa-predict``: named predictions of an evaluation run for new records.

    ecgjepa-predict run=<evaluation run dir> input=<WFDB folder | x.npy | manifest.csv> output=predictions.csv
                    [sampling_frequency=HZ] [batch_size=64]

``input`` is a folder searched recursively for WFDB records, a manifest CSV listing array files (columns
``file, sampling_rate, leads``, as for ``python -m data_prep folder``), or a ``.npy`` of shape (N, 12, T) in the
canonical lead order at ``sampling_frequency`` (default 500 Hz). Each record is prepared exactly as the run's
evaluation data was: leads matched by name, resampled to the run's rate, its first 10 s (the run's record
length) kept, each lead z-scored with the run's training-fold statistics, clipped to +-5, and the logits of the
run's strided crops averaged. ``output`` gets one row per record: its id, one probability column per class
(named by the class) and ``labels``: the classes at or above their thresholds (chosen for the best validation
F1 and stored in the run's ``predictor.json``), or the most probable class of a single-label task; a regression
run gives one column, named by its target, in the target's units. Records that
cannot be used are listed with the reason in ``<output stem>_rejects.csv``; the others are still predicted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ecgjepa.cli import command, parse_key_values
from ecgjepa.core.dump_format import REJECTS_COLUMNS
from ecgjepa.core.files import write_text_atomic
from ecgjepa.core.manifest import input_records
from ecgjepa.core.records import RecordRef, folder_spec, prepared_records
from ecgjepa.data.labelled import model_input
from ecgjepa.data.transforms import Conditioning
from ecgjepa.formats.files import load_file
from ecgjepa.formats.layouts import find_checkpoint
from ecgjepa.modules.classifier import ClassifierModule

OPTIONS = {"run", "input", "output", "sampling_frequency", "batch_size"}


def load_run(run_dir: Path) -> tuple[ClassifierModule, dict[str, Any]]:
    """The trained classifier (its best checkpoint) and the run's ``predictor.json``."""
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


def prepared(
    refs: list[RecordRef], base: Path, predictor: dict[str, Any], rejects: list[tuple[str, str]]
) -> Iterator[tuple[str, np.ndarray]]:
    """(record id, model input) of every usable record; the others go to ``rejects`` with the reason."""
    spec = folder_spec("predict", predictor["record_samples"] / predictor["sampling_frequency"])
    mean, std = np.asarray(predictor["mean"], np.float32), np.asarray(predictor["std"], np.float32)
    fs = predictor["sampling_frequency"]
    input_rate = predictor.get("input_rate", fs)  # runs written before models declared their rate: the dumps'
    band_pass = predictor.get("band_pass")
    conditioning = Conditioning(tuple(band_pass) if band_pass else None, predictor.get("standardise", "dataset"))
    for record_id, x in prepared_records(refs, base, spec, rejects):
        yield record_id, model_input(x[: predictor["record_samples"]], mean, std, fs, input_rate, conditioning)


@torch.inference_mode()
def predict(module: ClassifierModule, inputs: Iterator[tuple[str, np.ndarray]], batch_size: int) -> pd.DataFrame:
    ids: list[str] = []
    probabilities: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            probabilities.append(
                module.outputs(module.inference_logits(torch.from_numpy(np.stack(batch))).float()).numpy()
            )
            batch.clear()

    for record_id, x in inputs:
        ids.append(record_id)
        batch.append(x)
        if len(batch) == batch_size:
            flush()
    flush()
    return pd.DataFrame(np.concatenate(probabilities) if probabilities else None, index=pd.Index(ids, name="record_id"))


@command("ecgjepa-predict")
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_key_values(sys.argv[1:] if argv is None else argv, OPTIONS, {"run", "input", "output"}, __doc__)
    module, predictor = load_run(Path(args["run"]))
    fs = float(args["sampling_frequency"]) if "sampling_frequency" in args else None
    refs, base = input_records(Path(args["input"]), fs)
    rejects: list[tuple[str, str]] = []
    inputs = prepared(refs, base, predictor, rejects)
    progress = tqdm(inputs, total=len(refs), unit="record", disable=not sys.stderr.isatty())
    table = predict(module, progress, int(args.get("batch_size", 64)))
    if not table.empty:
        table.columns = predictor["classes"]
        labels = module.task_kind.labels(table[predictor["classes"]], predictor["thresholds"])
        if labels is not None:
            table["labels"] = labels
    output = Path(args["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, table.to_csv())
    rejected = output.with_name(f"{output.stem}_rejects.csv")
    write_text_atomic(rejected, pd.DataFrame(rejects, columns=list(REJECTS_COLUMNS)).to_csv(index=False))
    print(f"wrote {output}: {len(table)} record(s); {len(rejects)} could not be used (see {rejected})")


if __name__ == "__main__":
    main()

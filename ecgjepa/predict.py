"""``ecgjepa-predict``: named predictions of an evaluation run for new records.

    ecgjepa-predict run=<evaluation run dir> input=<WFDB folder | x.npy | manifest.csv> output=predictions.csv
                    [sampling_frequency=HZ] [batch_size=64] [explain=true] [engine=onnx]

``input`` is a folder searched recursively for WFDB records, a manifest CSV listing array files (columns
``file, sampling_rate, leads``, as for ``python -m data_prep folder``), or a ``.npy`` of shape (N, 12, T) in the
canonical lead order at ``sampling_frequency`` (default 500 Hz). Each record is prepared exactly as the run's
evaluation data was: leads matched by name (a run on a lead subset, ``leads=``, needs only those and zeroes the
others), resampled to the run's rate, its first seconds up to the run's ``record_duration`` kept (a record
shorter than one crop is rejected), each lead z-scored with the run's training-fold statistics, clipped to +-5,
and the logits of the crops that fit in it averaged. ``output`` gets one row per record: its id, one probability
column per class (named by the class) and ``labels``: the classes at or above their thresholds (chosen for the best
validation F1 and stored in the run's ``predictor.json``), or the most probable class of a single-label task; a
regression run gives one column, named by its target, in the target's units. Records that
cannot be used are listed with the reason in ``<output stem>_rejects.csv``; the others are still predicted. With
``explain=true`` the most probable class of each record is explained by integrated gradients into
``<output stem>_explanations/`` (the files ``ecgjepa-explain`` writes). ``engine=onnx`` runs the run's
``model.onnx`` (``ecgjepa-export RUN OUT format=onnx``) on onnxruntime instead of PyTorch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ecgjepa.cli import UsageError, command, parse_key_values
from ecgjepa.core.dump_format import REJECTS_COLUMNS
from ecgjepa.core.files import write_text_atomic
from ecgjepa.data.labelled import by_length, pad_records
from ecgjepa.deploy import ONNX_FILE, onnx_session
from ecgjepa.explain import DEFAULT_STEPS, write_explanations
from ecgjepa.formats.hub import local_path
from ecgjepa.modules.classifier import ClassifierModule
from ecgjepa.runs import prepared, run_and_records

OPTIONS = {"run", "input", "output", "sampling_frequency", "batch_size", "explain", "engine"}
ENGINES = ("torch", "onnx")


def onnx_outputs(session: Any, inputs: list[tuple[str, np.ndarray]], batch_size: int) -> pd.DataFrame:
    """The outputs of the ONNX classifier ``session`` for records of any lengths (the graph takes one length per
    call), in input order."""

    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [session.run(None, {"ecg": x[s : s + batch_size]})[0] for s in range(0, len(x), batch_size)]
        )

    index = pd.Index([record_id for record_id, _ in inputs], name="record_id")
    signals = [x.astype(np.float32) for _, x in inputs]
    return pd.DataFrame(by_length(signals, run) if signals else None, index=index)


@torch.inference_mode()
def predict(module: ClassifierModule, inputs: Iterable[tuple[str, np.ndarray]], batch_size: int) -> pd.DataFrame:
    ids: list[str] = []
    probabilities: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            padded, lengths = pad_records([torch.from_numpy(x) for x in batch])
            logits = module.inference_logits(padded, lengths)
            probabilities.append(module.outputs(logits.float()).numpy())
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
    module, predictor, refs, base = run_and_records(args)
    rejects: list[tuple[str, str]] = []
    explaining = args.get("explain", "false").lower() == "true"
    engine = args.get("engine", "torch")
    if engine not in ENGINES:
        raise UsageError(f"engine={engine}: expected one of {ENGINES}")
    session = onnx_session(local_path(args["run"]) / ONNX_FILE) if engine == "onnx" else None
    inputs = prepared(refs, base, predictor, rejects)
    if explaining or session is not None:  # read once, used twice (or grouped by length)
        inputs = list(inputs)
    progress = tqdm(inputs, total=len(refs), unit="record", disable=not sys.stderr.isatty())
    batch_size = int(args.get("batch_size", 64))
    table = predict(module, progress, batch_size) if session is None else onnx_outputs(session, inputs, batch_size)
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
    if explaining:
        folder = output.with_name(f"{output.stem}_explanations")
        count = write_explanations(module, predictor, inputs, folder, None, "integrated_gradients", DEFAULT_STEPS)
        print(f"wrote {count} explanation(s) into {folder}")


if __name__ == "__main__":
    main()

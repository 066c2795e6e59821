"""``ecgjepa-explain``: what an evaluation run's score of one class rests on, record by record.

    ecgjepa-explain run=<evaluation run dir> input=<WFDB folder | manifest.csv | x.npy> output=<DIR>
                    [class=NAME] [method=integrated_gradients|attention] [steps=64] [sampling_frequency=HZ]

Each record is prepared as ``ecgjepa-predict`` prepares it (the run's rate, record length, normalisation and
windows). For every usable record ``output`` gets ``<record>.png`` (the leads over a heat map in time of what drove
the class's score) and ``<record>.npz`` with ``attributions`` (leads x samples at the run's input rate), ``score``
(the class logit of the record), ``baseline_score`` (the logit of the all-zero input, the normalised mean),
``class_name`` and ``method``. ``class`` defaults to the record's most probable class. ``method``
(:mod:`ecgjepa.modules.attribution`): ``integrated_gradients`` (captum, ``steps`` points of the path integral; any
run) or ``attention`` (the attentive probe's attention over the 50 ms tokens; runs with that probe). Records that
cannot be used are listed with the reason in ``<output>/rejects.csv``.
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

from ecgjepa.cli import command, parse_key_values
from ecgjepa.core.dump_format import REJECTS_COLUMNS
from ecgjepa.core.files import atomic_write, write_text_atomic
from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.modules.attribution import METHODS, explain
from ecgjepa.modules.classifier import ClassifierModule
from ecgjepa.plots import plot_explanation
from ecgjepa.runs import prepared, run_and_records

OPTIONS = {"run", "input", "output", "class", "method", "steps", "sampling_frequency"}
DEFAULT_STEPS = 64


def file_stem(record_id: str) -> str:
    """A file name for a record id (ids of records in sub-folders hold path separators)."""
    return record_id.replace("/", "_").replace("\\", "_")


def write_explanations(
    module: ClassifierModule,
    predictor: dict[str, Any],
    inputs: Iterable[tuple[str, np.ndarray]],
    out_dir: Path,
    class_name: str | None,
    method: str,
    steps: int,
) -> int:
    """Explain every (record id, model input) into ``out_dir``; returns how many records were explained."""
    classes = list(predictor["classes"])
    if class_name is not None and class_name not in classes:
        raise ValueError(f"class={class_name}: the run's classes are {classes}")
    if method not in METHODS:
        raise ValueError(f"method={method}: expected one of {METHODS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = predictor.get("input_rate", predictor["sampling_frequency"])
    count = 0
    for record_id, x in inputs:
        signal = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        if class_name is None:
            with torch.no_grad():
                target = int(module(signal).argmax(dim=1))
        else:
            target = classes.index(class_name)
        result = explain(module, signal, target, method, steps)
        stem = file_stem(record_id)
        with atomic_write(out_dir / f"{stem}.npz") as tmp, open(tmp, "wb") as file:
            np.savez(
                file,
                attributions=result.attributions.astype(np.float32),
                score=np.float32(result.score),
                baseline_score=np.float32(result.baseline_score),
                class_name=classes[target],
                method=method,
            )
        title = f"{record_id}: {classes[target]} (logit {result.score:.2f}), {method.replace('_', ' ')}"
        plot_explanation(x, result.attributions, CANONICAL_LEADS, rate, title, out_dir / f"{stem}.png")
        count += 1
    return count


@command("ecgjepa-explain")
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_key_values(sys.argv[1:] if argv is None else argv, OPTIONS, {"run", "input", "output"}, __doc__)
    module, predictor, refs, base = run_and_records(args)
    rejects: list[tuple[str, str]] = []
    out_dir = Path(args["output"])
    inputs = tqdm(prepared(refs, base, predictor, rejects), total=len(refs), disable=not sys.stderr.isatty())
    method, steps = args.get("method", "integrated_gradients"), int(args.get("steps", DEFAULT_STEPS))
    count = write_explanations(module, predictor, inputs, out_dir, args.get("class"), method, steps)
    write_text_atomic(out_dir / "rejects.csv", pd.DataFrame(rejects, columns=list(REJECTS_COLUMNS)).to_csv(index=False))
    print(f"wrote {count} explanation(s) ({method}) into {out_dir}; {len(rejects)} record(s) could not be used")


if __name__ == "__main__":
    main()

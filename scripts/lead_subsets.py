"""Lead subsets on the bundled PTB-XL sample: the attentive probe's test AUROC (superdiagnostic) with 12, 8, 6
(limb), 2 and 1 lead(s), for a ViT-XS pre-trained with JEPA and one pre-trained for as many steps with
``data.lead_dropout``. Writes ``lead_subsets.md`` into ``--out`` (default ``outputs/lead_subsets``);
docs/lead_subsets.md shows a run of it. Finished runs are kept, so a second call only fills in what is missing.

    python scripts/lead_subsets.py [--steps 300] [--probe-steps 300] [--probability 0.5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

from ecgjepa.core.files import write_text_atomic
from ecgjepa.metrics import bootstrap_auroc

ROOT = Path(__file__).resolve().parents[1]
LEAD_SETS = {
    "12": None,
    "8 (I, II, V1-V6)": "[I,II,V1,V2,V3,V4,V5,V6]",
    "6 (limb)": "[I,II,III,AVR,AVL,AVF]",
    "2 (I, II)": "[I,II]",
    "1 (I)": "[I]",
}


def sh(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def pretrain(out: Path, steps: int, probability: float) -> Path:
    if not (out / "encoder" / "model.safetensors").is_file():
        sh(
            [
                "ecgjepa-train",
                f"optim.steps={steps}",
                f"trainer.max_steps={steps}",
                f"data.lead_dropout.probability={probability}",
                f"hydra.run.dir={out}",
            ]
        )
    return out


def probe(encoder: Path, leads: str | None, steps: int, out: Path) -> str:
    """The attentive probe's test macro AUROC with the 95 % interval of 200 bootstrap resamples of the test
    records, as a table cell."""
    command = [
        "ecgjepa-eval",
        f"encoder={encoder}",
        "dataset=ptbxl_sample",
        "task=superdiagnostic",
        f"protocol.steps={steps}",
        "protocol.checkpoint_interval=50",
        f"hydra.run.dir={out}",
    ]
    sh(command + ([f"leads={leads}"] if leads else []))
    auroc = json.loads((out / "metrics.json").read_text())["test_auroc"]
    predictions = np.load(out / "predictions.npz")
    interval = bootstrap_auroc(predictions["test_targets"], predictions["test_predictions"], n=200)
    return f"{auroc:.3f} ({interval['low']:.3f}-{interval['high']:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="pre-training steps of either encoder")
    parser.add_argument("--probe-steps", type=int, default=300)
    parser.add_argument("--probability", type=float, default=0.5, help="data.lead_dropout.probability")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "lead_subsets")
    args = parser.parse_args()
    encoders = {
        "JEPA": pretrain(args.out / "pretrain", args.steps, 0.0),
        f"JEPA + lead dropout {args.probability:g}": pretrain(
            args.out / "pretrain_dropout", args.steps, args.probability
        ),
    }
    rows = ["| leads | " + " | ".join(encoders) + " |", "|---|" + "---|" * len(encoders)]
    for name, leads in LEAD_SETS.items():
        tag = name.split()[0]
        cells = [
            probe(encoder, leads, args.probe_steps, args.out / f"eval_{e}_{tag}")
            for e, encoder in enumerate(encoders.values())
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(
        [
            f"Attentive probe, superdiagnostic, test macro AUROC (95 % bootstrap interval over the test records); "
            f"ViT-XS pre-trained {args.steps} steps on the bundled sample, probe {args.probe_steps} steps.",
            "",
            *rows,
        ]
    )
    write_text_atomic(args.out / "lead_subsets.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()

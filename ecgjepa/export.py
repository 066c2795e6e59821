"""``ecgjepa-export <checkpoint | run dir> <out dir> [leads=[I,II]]``: a self-contained encoder folder.

Writes the encoder export (:mod:`ecgjepa.formats.export`: ``model.safetensors`` with the EMA target encoder and
``config.json`` with model sizes, input conventions, normalisation constants, pre-training data and step) and a
model card ``README.md`` with the evaluation results found for this encoder. :func:`load_encoder` reads it back.
``leads`` declares the lead subset the encoder is meant for (``config.json`` → ``input.leads_used``, the default of
``ecgjepa-embed``): the other leads enter it as zeros after normalisation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ecgjepa.cli import UsageError, command
from ecgjepa.core.files import copy_atomic, write_text_atomic
from ecgjepa.core.leads import CANONICAL_LEADS, lead_subset
from ecgjepa.formats.export import CONFIG, export_description, read_export, write_export
from ecgjepa.formats.files import CheckpointError
from ecgjepa.formats.resolve import ResolvedEncoder, resolve_encoder


def description_of(resolved: ResolvedEncoder) -> dict[str, Any]:
    """``config.json`` of an export of ``resolved``: its own for an export, else gathered from the checkpoint."""
    if resolved.layout == "export":
        return read_export(resolved.source)[2]
    data = resolved.pretraining_data
    preprocess = {
        "sampling_frequency": resolved.preprocess.get("sampling_frequency") or data.get("sampling_frequency", 500),
        "normalisation": resolved.preprocess.get("normalisation") or {},
    }
    pretraining = {
        "data": {k: v.get("weight") for k, v in (data.get("sources") or {}).items()} or resolved.original_sources,
        "step": resolved.step,
        "source_checkpoint": str(resolved.source),
        "layout": resolved.layout,
        "method": resolved.method,
    }
    if (data.get("lead_dropout") or {}).get("probability"):
        pretraining["lead_dropout"] = data["lead_dropout"]
    return export_description(resolved.config, preprocess, pretraining)


def find_results(run_dir: Path, checkpoint: Path) -> list[dict[str, Any]]:
    """``metrics.json`` files under the run's parent folder whose ``encoder`` is this run/checkpoint."""
    names = {str(run_dir.resolve()), str(checkpoint.resolve())}
    results = []
    for metrics_path in sorted(run_dir.parent.rglob("metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        encoder = metrics.get("encoder")
        if encoder and str(Path(encoder).resolve()) in names:
            results.append(metrics)
    return results


METHOD_TITLES = {
    "jepa": "a Joint-Embedding Predictive Architecture (ECG-JEPA; Weimann & Conrad, arXiv 2410.13867)",
    "st_mem": "ST-MEM, spatio-temporal masked electrocardiogram modelling (Na et al., ICLR 2024)",
    "mtae": "MTAE, a masked time autoencoder (as in Na et al., ICLR 2024)",
    "mlae": "MLAE, a masked lead autoencoder (as in Na et al., ICLR 2024)",
    "moco_v3": "MoCo v3, momentum contrast (Chen, Xie & He, ICCV 2021)",
    "cmsc": "CMSC, contrastive multi-segment coding (Kiyasseh et al., ICML 2021)",
    "simclr": "SimCLR, contrastive learning of two augmented views (Chen et al., ICML 2020)",
    "byol": "BYOL, bootstrap your own latent (Grill et al., NeurIPS 2020)",
    "cpc": "CPC, contrastive predictive coding (van den Oord et al., 2018)",
}
TOKENS = {
    "patches": "patches of {patch} samples over all leads",
    "lead_patches": "patches of {patch} samples of each lead, with separator tokens around each lead",
    "leads": "one token per whole lead",
}


def architecture_lines(m: dict[str, Any], inp: dict[str, Any]) -> tuple[str, list[str], str]:
    """(what the network is, its bullet lines, what it returns) for the model card."""
    shape = f"{len(inp['leads'])} leads ({', '.join(inp['leads'])}) at {inp['sampling_frequency']} Hz"
    if "arch" in m:
        return (
            f"The {m['name']} network",
            [f"* input: {shape}, any length (trained on {m['crop_duration']:g} s windows)"],
            "x: (B, 12, T) prepared as above -> (B, time steps, D)",
        )
    tokens = TOKENS[m.get("tokenizer", "patches")].format(patch=inp["patch_size"])
    return (
        "A Vision Transformer",
        [
            f"* width {m['dim']}, depth {m['depth']}, {m['num_heads']} heads, {m['num_registers']} register token(s)",
            f"* input: {shape}, up to {inp['length']} samples, {tokens}",
        ],
        f"x: (B, 12, T) prepared as above, T a multiple of {inp['patch_size']} -> (B, N, D)",
    )


def model_card(config: dict[str, Any], results: list[dict[str, Any]]) -> str:
    m, inp = config["model"], config["input"]
    method = config["pretraining"].get("method", "jepa")
    network, architecture, call = architecture_lines(m, inp)
    steps = [f"a {m['band_pass'][0]:g}-{m['band_pass'][1]:g} Hz band-pass"] if m.get("band_pass") else []
    if m.get("standardise", "dataset") != "dataset":
        whom = "the whole ECG" if m["standardise"] == "ecg" else "each lead"
        steps.append(f"{whom} standardised to zero mean and unit variance")
    conditioning = f"; then {' and '.join(steps)}" if steps else ""
    used = inp.get("leads_used") or inp["leads"]
    if len(used) < len(inp["leads"]):
        leads_line = f"* leads used: {', '.join(used)}; the others enter as zeros after normalisation (the mean)"
    else:
        leads_line = "* leads used: all twelve (`leads=` of `ecgjepa-embed` and `ecgjepa-eval` takes a subset)"
    dropout = config["pretraining"].get("lead_dropout")
    if dropout:
        leads_line += f"; pre-trained with lead dropout {dropout}"
    lines = [
        f"# ECG encoder ({m['name']}, method={method})",
        "",
        f"{network} for 12-lead ECGs pre-trained with {METHOD_TITLES.get(method, method)}, exported by",
        "`ecgjepa-export`.",
        "",
        *architecture,
        leads_line,
        f"* normalisation: {inp['normalisation']} (`config.json` → `normalisation`){conditioning}",
        f"* pre-training data: {config['pretraining']['data']}, step {config['pretraining']['step']}",
        "",
        "```python",
        "import ecgjepa",
        "encoder = ecgjepa.load_encoder('<this folder>')   # torch.nn.Module in eval mode",
        f"tokens = encoder(x)   # {call}",
        "```",
        "",
        "## Evaluation results",
        "",
    ]
    if not results:
        lines.append("No evaluation of this encoder was found next to it.")
    else:
        lines += ["| task | protocol | seed | metric | val | test | test records |", "|---|---|---|---|---|---|---|"]
        for r in results:
            n_test = (r.get("num_records") or {}).get("test", "")
            metric = r.get("metric", "auroc")
            lines.append(
                f"| {r['task']} | {r['protocol']} | {r.get('seed')} | {metric} | {r[f'val_{metric}']:.4f} | "
                f"{r[f'test_{metric}']:.4f} | {n_test} |"
            )
    return "\n".join(lines) + "\n"


def export(source: str | Path, out_dir: str | Path, leads: Sequence[str] | str | None = None) -> Path:
    """Export the encoder of ``source`` (a checkpoint, run directory or export) into ``out_dir``, meant for the
    lead subset ``leads`` (None: the source's, all twelve for a checkpoint)."""
    resolved = resolve_encoder(source)
    if resolved.classifier_state is not None:
        raise CheckpointError(
            f"{resolved.source}: a {resolved.layout} checkpoint holds a classifier; export its pre-training run"
        )
    run_dir = Path(source) if Path(source).is_dir() else resolved.source.parent.parent
    out = Path(out_dir)
    description = description_of(resolved)
    used = list(lead_subset(leads if leads is not None else description["input"].get("leads_used")))
    changed = used != description["input"].get("leads_used", list(CANONICAL_LEADS))
    description["input"]["leads_used"] = used
    if resolved.layout == "export" and resolved.source.resolve() != out.resolve():
        out.mkdir(parents=True, exist_ok=True)
        folder = resolved.source if resolved.source.is_dir() else resolved.source.parent
        copy_atomic(folder / "model.safetensors", out / "model.safetensors")
        write_text_atomic(out / CONFIG, json.dumps(description, indent=2) + "\n")
    elif resolved.layout != "export":
        write_export(out, resolved.state, description)
    elif changed:
        write_text_atomic(out / CONFIG, json.dumps(description, indent=2) + "\n")
    write_text_atomic(out / "README.md", model_card(description, find_results(run_dir, resolved.source)))
    return out


def load_encoder(path: str | Path) -> nn.Module:
    """A ready encoder (eval mode) from an export folder, its ``model.safetensors``, or any checkpoint or run
    directory :func:`~ecgjepa.formats.resolve.resolve_encoder` understands."""
    return resolve_encoder(path).build()


@command("ecgjepa-export")
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    options = dict(arg.split("=", 1) for arg in args[2:] if "=" in arg)
    if len(args) < 2 or len(args) - 2 != len(options) or set(options) - {"leads"}:
        raise UsageError("usage: ecgjepa-export CHECKPOINT_OR_RUN_DIR OUT_DIR [leads=[I,II]]")
    out = export(args[0], args[1], options.get("leads"))
    print(f"wrote {out}/model.safetensors, config.json and README.md")


if __name__ == "__main__":
    main()

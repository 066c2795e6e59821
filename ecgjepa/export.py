"""``ecgjepa-export <checkpoint | run dir | hf://id> <out dir> [leads=[I,II]] [format=onnx] [push_to_hub=OWNER/NAME]
[license=ID]``: a self-contained encoder folder, or an evaluation run's classifier folder.

Writes the encoder export (:mod:`ecgjepa.formats.export`: ``model.safetensors`` with the EMA target encoder and
``config.json`` with model sizes, input conventions, normalisation constants, pre-training data and step) and a
model card ``README.md`` with the evaluation results found for this encoder. :func:`load_encoder` reads it back.
``leads`` declares the lead subset the encoder is meant for (``config.json`` → ``input.leads_used``, the default of
``ecgjepa-embed``): the other leads enter it as zeros after normalisation. An evaluation run exports as a classifier
(weights, classes, thresholds, preprocessing) that ``ecgjepa-predict run=<folder>`` uses. ``format=onnx`` adds
``model.onnx`` (:mod:`ecgjepa.deploy`); ``push_to_hub`` uploads the folder to the Hugging Face Hub
(:mod:`ecgjepa.formats.hub`), its card opening with the Hub's metadata (licence ``license``, tags, datasets).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ecgjepa.cli import UsageError, command
from ecgjepa.core.files import atomic_write, copy_atomic, write_text_atomic
from ecgjepa.core.leads import CANONICAL_LEADS, lead_subset
from ecgjepa.deploy import ONNX_FILE, TOLERANCE, export_classifier_onnx, export_encoder_onnx
from ecgjepa.formats.export import CONFIG, export_description, read_export, write_export
from ecgjepa.formats.files import load_file
from ecgjepa.formats.hub import is_hub_id, push_folder
from ecgjepa.formats.layouts import find_checkpoint
from ecgjepa.formats.resolve import ResolvedEncoder, resolve_encoder
from ecgjepa.models.backbones import build_encoder, encoder_config
from ecgjepa.runs import load_run
from ecgjepa.utils.hydra import load_group_option


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


EXPORT_OPTIONS = {"leads", "format", "push_to_hub", "license"}
# The card's licence unless license= names one: the weights' terms follow from their training data's, which the
# publisher states.
DEFAULT_LICENSE = "other"
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


def onnx_lines(inp: dict[str, Any], what: str, output: str) -> list[str]:
    """The model card's section on ``model.onnx``."""
    return [
        "",
        "## Without PyTorch",
        "",
        f"`model.onnx` holds {what} for onnxruntime (checked against PyTorch on real records when written,",
        f"to within {TOLERANCE:g}): input `ecg`, (batch, 12, samples) float32 at {inp['sampling_frequency']} Hz in the",
        f"order above, normalised as above; output `{output}`.",
        "",
        "```python",
        "import onnxruntime",
        "session = onnxruntime.InferenceSession('<this folder>/model.onnx')",
        f"{output} = session.run(None, {{'ecg': x}})[0]",
        "```",
    ]


def card_header(license: str, tags: list[str], datasets: list[str]) -> list[str]:
    """The Hugging Face Hub's metadata block that opens a model card."""
    metadata = {"license": license, "library_name": "ecgjepa", "tags": tags, "datasets": datasets}
    return ["---", yaml.safe_dump(metadata, sort_keys=False).strip(), "---", ""]


def model_card(
    config: dict[str, Any], results: list[dict[str, Any]], onnx: bool = False, license: str = DEFAULT_LICENSE
) -> str:
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
    data = config["pretraining"]["data"]
    lines = [
        *card_header(license, ["ecg", "self-supervised", method, "ecgjepa"], sorted(data or [])),
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
    if onnx:
        lines[lines.index("## Evaluation results") - 1 : lines.index("## Evaluation results") - 1] = onnx_lines(
            inp, "the same encoder", "tokens"
        )
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


def export(
    source: str | Path,
    out_dir: str | Path,
    leads: Sequence[str] | str | None = None,
    onnx: bool = False,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Export the encoder of ``source`` (a checkpoint, run directory, export or Hub id) into ``out_dir``, meant for
    the lead subset ``leads`` (None: the source's, all twelve for a checkpoint); an evaluation run exports as a
    classifier (:func:`export_classifier`). ``onnx`` adds ``model.onnx``, checked against PyTorch; ``license``
    goes into the model card's Hub metadata."""
    resolved = resolve_encoder(source)
    if resolved.classifier_state is not None:
        if leads is not None:
            raise UsageError("leads=: an evaluation run's leads are its own (ecgjepa-eval leads=...)")
        return export_classifier(resolved.source, Path(out_dir), onnx, license)
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
    if onnx:
        path, worst = export_encoder_onnx(resolved.build(), resolved.config, out)
        print(f"wrote {path}: onnxruntime within {worst:.1e} of PyTorch on real records")
    has_onnx = (out / ONNX_FILE).is_file()
    results = [] if is_hub_id(source) else find_results(run_dir, resolved.source)
    write_text_atomic(out / "README.md", model_card(description, results, has_onnx, license))
    return out


def export_classifier(run_dir: Path, out: Path, onnx: bool = False, license: str = DEFAULT_LICENSE) -> Path:
    """An evaluation run as a classifier folder that ``ecgjepa-predict run=<folder>`` uses as it uses the run:
    ``checkpoints/best.ckpt`` (weights and hyper-parameters only), ``predictor.json`` (classes, thresholds,
    preprocessing), ``metrics.json`` and a model card; ``onnx`` adds the whole classifier as ``model.onnx``."""
    run_dir = run_dir if run_dir.is_dir() else run_dir.parent.parent  # checkpoints/best.ckpt -> its run
    module, predictor = load_run(run_dir)
    ckpt = load_file(find_checkpoint(run_dir))
    kept = {key: ckpt[key] for key in ("state_dict", "hyper_parameters", "global_step") if key in ckpt}
    with atomic_write(out / "checkpoints" / "best.ckpt") as tmp:
        torch.save(kept, tmp)
    write_text_atomic(out / "predictor.json", json.dumps(predictor, indent=2) + "\n")
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    if metrics:
        write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if onnx:
        rate = predictor.get("input_rate", predictor["sampling_frequency"])
        samples = round(predictor["record_samples"] * rate / predictor["sampling_frequency"])
        path, worst = export_classifier_onnx(module, rate, samples, out)
        print(f"wrote {path}: onnxruntime within {worst:.1e} of PyTorch on real records")
    card = classifier_card(predictor, metrics, module, (out / ONNX_FILE).is_file(), license)
    write_text_atomic(out / "README.md", card)
    return out


def classifier_card(
    predictor: dict[str, Any], metrics: dict[str, Any], module: Any, onnx: bool, license: str = DEFAULT_LICENSE
) -> str:
    """The model card of an exported evaluation run."""
    fs, rate = predictor["sampling_frequency"], predictor.get("input_rate", predictor["sampling_frequency"])
    leads = predictor.get("leads") or list(CANONICAL_LEADS)
    crop = "whole records" if module.crop is None else f"crops of {module.crop / rate:g} s averaged"
    thresholds = predictor.get("thresholds")
    tags = ["ecg", "ecg-classification", str(metrics.get("method", "jepa")), "ecgjepa"]
    lines = [
        *card_header(license, tags, []),
        f"# ECG classifier ({predictor['task']}, {predictor['kind']})",
        "",
        f"An evaluation run of `ecgjepa-eval` ({metrics.get('protocol', 'its protocol')} on "
        f"{metrics.get('encoder_name', 'its encoder')}), exported by `ecgjepa-export`.",
        "",
        f"* classes: {', '.join(predictor['classes'])}",
        f"* thresholds (best validation F1): {[round(t, 4) for t in thresholds] if thresholds else 'none'}",
        f"* input: leads {', '.join(leads)} (the others zero after normalisation) at {rate} Hz, from one crop up "
        f"to {predictor['record_samples'] / fs:g} s; {crop}",
        "* normalisation: per-lead z-score with the training folds' `mean` and `std` of `predictor.json`, clipped "
        "to [-5, 5]",
    ]
    if metrics:
        metric = metrics.get("metric", "auroc")
        lines.append(f"* test {metric}: {metrics[f'test_{metric}']:.4f} (validation {metrics[f'val_{metric}']:.4f})")
    lines += [
        "",
        "```bash",
        "ecgjepa-predict run=<this folder> input=<WFDB folder | manifest.csv | x.npy> output=predictions.csv",
        "```",
    ]
    if onnx:
        inp = {"sampling_frequency": rate}
        lines += onnx_lines(inp, "the whole classifier with its crop averaging", "outputs")
    return "\n".join(lines) + "\n"


def load_encoder(path: str | Path) -> nn.Module:
    """A ready encoder (eval mode) from an export folder, its ``model.safetensors``, or any checkpoint or run
    directory :func:`~ecgjepa.formats.resolve.resolve_encoder` understands."""
    return resolve_encoder(path).build()


def backbone(name: str, weights: str | Path | None = None) -> nn.Module:
    """The backbone ``name`` of ``conf/model/`` (eval mode): the encoder of ``weights`` (anything
    :func:`load_encoder` reads), which must be that backbone, or without weights a fresh one for 12 leads and 10 s
    at its rate (``hubconf.py``'s entry points)."""
    if weights is not None:
        resolved = resolve_encoder(weights)
        if resolved.config.name != name:
            raise ValueError(f"weights={weights}: holds a {resolved.config.name} encoder, not {name}")
        return resolved.build()
    model = load_group_option("model", name)
    rate = model.get("sampling_frequency") or 500
    shape = {"channels": list(CANONICAL_LEADS), "channel_size": round(10 * rate), "sampling_frequency": rate}
    return build_encoder(encoder_config({**model, **shape})).eval()


@command("ecgjepa-export")
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    options = dict(arg.split("=", 1) for arg in args[2:] if "=" in arg)
    if len(args) < 2 or len(args) - 2 != len(options) or set(options) - EXPORT_OPTIONS:
        raise UsageError(
            "usage: ecgjepa-export CHECKPOINT_OR_RUN_DIR OUT_DIR [leads=[I,II]] [format=onnx] "
            "[push_to_hub=OWNER/NAME] [license=ID]"
        )
    if options.get("format", "safetensors") not in ("safetensors", "onnx"):
        raise UsageError(f"format={options['format']}: expected onnx (or safetensors, the default)")
    license = options.get("license", DEFAULT_LICENSE)
    out = export(args[0], args[1], options.get("leads"), options.get("format") == "onnx", license)
    print(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    if "push_to_hub" in options:
        print(f"uploaded to {push_folder(out, options['push_to_hub'])}")


if __name__ == "__main__":
    main()

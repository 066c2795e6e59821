"""``ecgjepa-export <checkpoint | run dir> <out dir>``: a self-contained encoder folder.

Writes ``model.safetensors`` (the EMA target encoder), ``config.json`` (model sizes, input
conventions, normalisation constants, pre-training data and step) and a model card ``README.md``
with the evaluation results found for this encoder. :func:`load_encoder` reads it back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file

import ecgjepa
from ecgjepa.checkpoint import find_checkpoint, load_encoder_state, load_file, load_into
from ecgjepa.cli import UsageError, command
from ecgjepa.models import ModelConfig, VisionTransformer


def export_config(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    cfg, state, extras = load_encoder_state(path)
    preprocess = dict(extras.get("preprocess") or {})
    ckpt = load_file(path)
    hp = ckpt.get("hyper_parameters", {})
    data = hp.get("data") or {}
    config = {
        "format": "ecgjepa-encoder",
        "ecgjepa_version": ecgjepa.__version__,
        "model": cfg.to_dict(),
        "input": {
            "sampling_frequency": preprocess.get("sampling_frequency") or data.get("sampling_frequency", 500),
            "leads": list(cfg.channels),
            "length": cfg.channel_size,
            "patch_size": cfg.patch_size,
            "normalisation": "per-lead z-score with the constants below, then clip to [-5, 5]",
        },
        "normalisation": preprocess.get("normalisation") or {},
        "pretraining": {
            "data": preprocess.get("sources")
            or {k: v.get("weight") for k, v in (data.get("sources") or {}).items()}
            or extras.get("original_sources"),
            "step": extras.get("step"),
            "source_checkpoint": str(path),
            "layout": extras.get("layout"),
        },
    }
    return cfg, state, config


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


def model_card(config: dict[str, Any], results: list[dict[str, Any]]) -> str:
    m, inp = config["model"], config["input"]
    lines = [
        f"# ECG-JEPA encoder ({m['name']})",
        "",
        "A Vision Transformer for 12-lead ECGs pre-trained with a Joint-Embedding Predictive Architecture",
        "(Weimann & Conrad, arXiv 2410.13867), exported by `ecgjepa-export`.",
        "",
        f"* width {m['dim']}, depth {m['depth']}, {m['num_heads']} heads, {m['num_registers']} register token(s)",
        f"* input: {len(inp['leads'])} leads ({', '.join(inp['leads'])}) at {inp['sampling_frequency']} Hz, "
        f"up to {inp['length']} samples, patches of {inp['patch_size']} samples over all leads",
        f"* normalisation: {inp['normalisation']} (`config.json` → `normalisation`)",
        f"* pre-training data: {config['pretraining']['data']}, step {config['pretraining']['step']}",
        "",
        "```python",
        "import ecgjepa",
        "encoder = ecgjepa.load_encoder('<this folder>')   # torch.nn.Module in eval mode",
        "tokens = encoder(x)   # x: (B, 12, T) normalised, T a multiple of 25 -> (B, T/25, D)",
        "```",
        "",
        "## Evaluation results",
        "",
    ]
    if not results:
        lines.append("No evaluation of this encoder was found next to it.")
    else:
        lines += ["| task | protocol | seed | val AUROC | test AUROC | test records |", "|---|---|---|---|---|---|"]
        for r in results:
            n_test = (r.get("num_records") or {}).get("test", "")
            lines.append(
                f"| {r['task']} | {r['protocol']} | {r.get('seed')} | {r['val_auroc']:.4f} | "
                f"{r['test_auroc']:.4f} | {n_test} |"
            )
    return "\n".join(lines) + "\n"


def export(source: str | Path, out_dir: str | Path) -> Path:
    """Export the encoder of ``source`` (a checkpoint or run directory) into ``out_dir``."""
    checkpoint = find_checkpoint(source)
    run_dir = Path(source) if Path(source).is_dir() else checkpoint.parent.parent
    cfg, state, config = export_config(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text(model_card(config, find_results(run_dir, checkpoint)))
    return out


def load_encoder(path: str | Path) -> VisionTransformer:
    """A ready encoder (eval mode) from an export folder, a ``model.safetensors``/``config.json`` pair,
    or any checkpoint :func:`ecgjepa.checkpoint.load_encoder_state` understands."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if (folder / "model.safetensors").is_file() and (path.is_dir() or path.suffix == ".safetensors"):
        config = json.loads((folder / "config.json").read_text())
        cfg = ModelConfig.from_dict(config["model"])
        state = load_safetensors(str(folder / "model.safetensors"))
        source = str(folder / "model.safetensors")
    else:
        checkpoint = find_checkpoint(path)
        cfg, state, _ = load_encoder_state(checkpoint)
        source = str(checkpoint)
    encoder = VisionTransformer(cfg)
    load_into(encoder, state, source)
    return encoder.eval()


@command("ecgjepa-export")
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        raise UsageError("usage: ecgjepa-export CHECKPOINT_OR_RUN_DIR OUT_DIR")
    out = export(args[0], args[1])
    print(f"wrote {out}/model.safetensors, config.json and README.md")


if __name__ == "__main__":
    main()

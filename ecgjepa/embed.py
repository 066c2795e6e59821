"""``ecgjepa-embed``: encoder outputs for your own ECGs.

    ecgjepa-embed encoder=<ckpt|run dir|export> input=<x.npy | WFDB folder> output=<emb.npy>
                  [tokens=true] [normalize=false] [sampling_frequency=HZ] [source=NAME] [batch_size=64]

``input`` is a ``.npy`` of shape (N, 12, T) in the canonical lead order (I, II, III, aVR, aVL, aVF,
V1-V6) at ``sampling_frequency`` (default: the encoder's, 500 Hz), or a folder searched recursively for
WFDB records (leads matched by name, rate read from the header). Inputs at another rate are resampled.
By default inputs are normalised with the encoder's per-lead constants (``source`` picks one when the
encoder was pre-trained on several sources); ``normalize=false`` passes normalised arrays unchanged.
The output is (N, D): the mean of the patch tokens, or with ``tokens=true`` (N, T/25, D): every patch
token after the final LayerNorm, registers dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import wfdb
from omegaconf import OmegaConf

from ecgjepa.cli import command, parse_key_values
from ecgjepa.data.signal import lead_permutation, resample
from ecgjepa.data.transforms import normalise
from ecgjepa.formats.original import SOURCE_KEYS
from ecgjepa.formats.resolve import resolve_encoder
from ecgjepa.models import VisionTransformer
from ecgjepa.utils.paths import conf_dir

OPTIONS = {"encoder", "input", "output", "tokens", "normalize", "sampling_frequency", "source", "batch_size"}


def paper_constants() -> dict[str, dict[str, list[float]]]:
    """Per-source normalisation constants of the paper (conf/data/all.yaml), canonical lead order."""
    sources = OmegaConf.load(conf_dir() / "data" / "all.yaml")["sources"]
    return {name: {"mean": list(s["mean"]), "std": list(s["std"])} for name, s in sources.items()}


def normalisation_constants(preprocess: dict[str, Any], original_sources: Sequence[str], source: str | None) -> dict:
    table = dict(preprocess.get("normalisation") or {})
    if not table:
        known = paper_constants()
        table = {
            SOURCE_KEYS.get(k, k): known[SOURCE_KEYS.get(k, k)]
            for k in original_sources
            if SOURCE_KEYS.get(k, k) in known
        }
    if source is None:
        if len(table) != 1:
            raise SystemExit(
                f"ecgjepa-embed: the encoder knows constants for {sorted(table) or 'no source'}; "
                "pick one with source=NAME, or pass normalize=false"
            )
        source = next(iter(table))
    if source not in table:
        raise SystemExit(f"ecgjepa-embed: source={source!r} unknown; choose from {sorted(table)}")
    return {
        "mean": np.asarray(table[source]["mean"], np.float32),
        "std": np.asarray(table[source]["std"], np.float32),
    }


def load_array(path: Path) -> np.ndarray:
    """The numeric array in the ``.npy`` file ``path`` (memory-mapped), or a ValueError naming the file."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy array (expected one written by numpy.save): {err}") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected a numeric .npy array, got {getattr(x, 'dtype', type(x).__name__)}")
    return x


def read_inputs(path: Path, fs: float | None, target_fs: float) -> np.ndarray:
    """(N, 12, T) float32 at ``target_fs`` from a .npy file or a folder of WFDB records."""
    if path.is_file():
        x = load_array(path)
        if x.ndim != 3 or x.shape[1] != 12:
            raise ValueError(f"input={path} has shape {x.shape}; expected (N, 12, T)")
        x = np.array(x, dtype=np.float32)
        if fs is not None and fs != target_fs:
            x = np.stack([resample(r.T, fs, target_fs).T for r in x])
        return x
    headers = sorted(path.rglob("*.hea"))
    if not headers:
        raise FileNotFoundError(f"input={path} is neither a .npy file nor a folder with WFDB records")
    records = []
    for header in headers:
        try:
            signal, fields = wfdb.rdsamp(str(header.with_suffix("")))
        except (OSError, ValueError) as err:
            raise ValueError(f"{header.with_suffix('')}: not a readable WFDB record: {err}") from None
        signal = signal[:, lead_permutation(fields["sig_name"])]
        records.append(resample(signal, fields["fs"], target_fs) if fields["fs"] != target_fs else signal)
    if len({len(r) for r in records}) != 1:
        raise ValueError(f"records under {path} differ in length: {sorted({len(r) for r in records})}")
    return np.stack([r.T for r in records]).astype(np.float32)


@torch.inference_mode()
def embed(encoder: VisionTransformer, x: np.ndarray, tokens: bool, batch_size: int = 64) -> np.ndarray:
    """Encoder outputs for x (N, 12, T): (N, T/25, D) tokens or (N, D) token means."""
    out = []
    for start in range(0, len(x), batch_size):
        z = encoder(torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])))
        out.append((z if tokens else z.mean(dim=1)).numpy())
    return np.concatenate(out)


@command("ecgjepa-embed")
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_key_values(
        sys.argv[1:] if argv is None else argv, OPTIONS, {"encoder", "input", "output"}, __doc__, {"tokens"}
    )
    resolved = resolve_encoder(args["encoder"])
    encoder, cfg, path = resolved.build(), resolved.config, resolved.source
    target_fs = float(resolved.preprocess.get("sampling_frequency") or 500)
    fs = float(args["sampling_frequency"]) if "sampling_frequency" in args else None
    x = read_inputs(Path(args["input"]), fs, target_fs)
    if x.shape[-1] % cfg.patch_size or x.shape[-1] > cfg.channel_size:
        raise ValueError(
            f"inputs have {x.shape[-1]} samples; the encoder takes a multiple of "
            f"{cfg.patch_size} up to {cfg.channel_size} (crop the records first)"
        )
    if args.get("normalize", "true").lower() != "false":
        c = normalisation_constants(resolved.preprocess, resolved.original_sources, args.get("source"))
        x = normalise(x, c["mean"][None, :, None], c["std"][None, :, None]).astype(np.float32)
    z = embed(encoder, x, args.get("tokens", "false").lower() == "true", int(args.get("batch_size", 64)))
    Path(args["output"]).parent.mkdir(parents=True, exist_ok=True)
    np.save(args["output"], z)
    print(f"wrote {args['output']}: {z.shape} ({'tokens' if z.ndim == 3 else 'pooled'}) from {path}")


if __name__ == "__main__":
    main()

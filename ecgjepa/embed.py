"""``ecgjepa-embed``: encoder outputs for your own ECGs.

    ecgjepa-embed encoder=<ckpt|run dir|export> input=<WFDB folder | manifest.csv | x.npy> output=<emb.npy>
                  [tokens=true] [normalize=false] [sampling_frequency=HZ] [source=NAME] [batch_size=64]
                  [leads=[I,II]]

``input`` is a folder searched recursively for WFDB records, or a manifest CSV listing array files (columns
``file, sampling_rate, leads``, as for ``python -m data_prep folder``): each record is read and prepared as every
dump's records are (leads matched by name, NaNs interpolated, resampled to the encoder's rate), and its first
``channel_size`` samples (10 s), rounded down to whole patches (a baseline network: the whole record), are embedded.
Records that cannot be used are listed with the reason in ``<output stem>_rejects.csv``;
``<output stem>_records.csv`` names the record of each output row. ``input`` can also be a ``.npy`` of model-ready
arrays (N, 12, T) in the canonical lead order (I, II, III, aVR, aVL, aVF, V1-V6) at ``sampling_frequency`` (default:
the encoder's, 500 Hz), resampled if needed.

By default inputs are normalised with the encoder's per-lead constants (``source`` picks one when the encoder was
pre-trained on several sources) and conditioned as its method asks (ST-MEM's band-pass and whole-ECG
standardisation); ``normalize=false`` passes model-ready arrays unchanged. The output is (N, D): the mean of the
tokens, or with ``tokens=true`` (N, tokens, D): every token after the final LayerNorm, registers and separators
dropped (records of one length only).

``leads`` (default: the export's ``leads``, else all twelve) names the leads used, e.g. ``leads=[I]`` for a single-lead
wearable: records need only those, and the others enter the encoder as zeros after normalisation (the mean).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from ecgjepa.cli import command, parse_key_values
from ecgjepa.core.dump_format import REJECTS_COLUMNS
from ecgjepa.core.files import save_npy_atomic, write_text_atomic
from ecgjepa.core.leads import CANONICAL_LEADS, lead_mask, lead_subset
from ecgjepa.core.manifest import input_records
from ecgjepa.core.records import folder_spec, load_npy, prepared_records
from ecgjepa.core.signal import resample
from ecgjepa.data.labelled import by_length
from ecgjepa.data.transforms import Conditioning, normalise
from ecgjepa.formats.original import SOURCE_KEYS
from ecgjepa.formats.resolve import resolve_encoder
from ecgjepa.models import ModelConfig
from ecgjepa.models.backbones import EncoderConfig
from ecgjepa.utils.paths import conf_dir

OPTIONS = {"encoder", "input", "output", "tokens", "normalize", "sampling_frequency", "source", "batch_size", "leads"}


def paper_constants() -> dict[str, dict[str, list[float]]]:
    """Per-source normalisation constants of the paper (conf/data_base/source_constants.yaml), canonical lead order."""
    sources = OmegaConf.load(conf_dir() / "data_base" / "source_constants.yaml")
    return {name: {"mean": list(s["mean"]), "std": list(s["std"])} for name, s in sources.items()}


def normalisation_constants(
    preprocess: dict[str, Any], original_sources: Sequence[str], source: str | None
) -> dict[str, np.ndarray]:
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
            raise ValueError(
                f"the encoder knows constants for {sorted(table) or 'no source'}; "
                "pick one with source=NAME, or pass normalize=false"
            )
        source = next(iter(table))
    if source not in table:
        raise ValueError(f"source={source!r} unknown; choose from {sorted(table)}")
    return {
        "mean": np.asarray(table[source]["mean"], np.float32),
        "std": np.asarray(table[source]["std"], np.float32),
    }


def read_arrays(path: Path, fs: float | None, target_fs: float) -> np.ndarray:
    """(N, 12, T) float32 at ``target_fs`` from a .npy file of model-ready arrays."""
    x = load_npy(path)
    if x.ndim != 3 or x.shape[1] != 12:
        raise ValueError(f"input={path} has shape {x.shape}; expected (N, 12, T)")
    x = np.array(x, dtype=np.float32)
    if fs is not None and fs != target_fs:
        x = np.stack([resample(r.T, fs, target_fs).T for r in x])
    return x


def input_rule(cfg: EncoderConfig) -> tuple[int, int | None]:
    """(granule, most samples) of an encoder's input: a ViT takes whole patches up to its ``channel_size``; a
    baseline network takes any length (a record is embedded whole)."""
    if isinstance(cfg, ModelConfig):
        return cfg.patch_size, cfg.channel_size
    return 1, None


def check_length(samples: int, cfg: EncoderConfig) -> None:
    if not isinstance(cfg, ModelConfig):
        return
    if cfg.fixed_length and samples != cfg.channel_size:
        raise ValueError(f"inputs have {samples} samples; the encoder takes exactly {cfg.channel_size} (one per lead)")
    if samples % cfg.patch_size or samples > cfg.channel_size:
        raise ValueError(
            f"inputs have {samples} samples; the encoder takes a multiple of "
            f"{cfg.patch_size} up to {cfg.channel_size} (crop the records first)"
        )


def record_inputs(
    path: Path,
    target_fs: float,
    cfg: EncoderConfig,
    rejects: list[tuple[str, str]],
    leads: tuple[str, ...] = CANONICAL_LEADS,
) -> Iterator[tuple[str, np.ndarray]]:
    """(record id, (12, T) float32 at ``target_fs``) of every usable record under ``input`` (one holding ``leads``),
    T the first ``channel_size`` samples rounded down to whole patches (a baseline network: the whole record); the
    others go to ``rejects``."""
    granule, most = input_rule(cfg)
    refs, base = input_records(path, None)
    spec = folder_spec("embed", granule / target_fs, leads)
    records = prepared_records(refs, base, spec, rejects)
    for record_id, x in tqdm(records, total=len(refs), unit="record", disable=not sys.stderr.isatty()):
        x = resample(x.astype(np.float32), 500, target_fs)  # the reader prepares records at 500 Hz
        samples = min(len(x), most or len(x)) // granule * granule
        if samples == 0:
            rejects.append((record_id, f"shorter than one patch ({granule} samples)"))
            continue
        yield record_id, np.ascontiguousarray(x[:samples].T)


@torch.inference_mode()
def embed(encoder: torch.nn.Module, x: np.ndarray, tokens: bool, batch_size: int = 64) -> np.ndarray:
    """Encoder outputs for x (N, 12, T): (N, tokens, D) or (N, D) token means."""
    out = []
    for start in range(0, len(x), batch_size):
        z = encoder(torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])))
        out.append((z if tokens else z.mean(dim=1)).numpy())
    return np.concatenate(out)


def embed_records(
    encoder: torch.nn.Module, inputs: list[tuple[str, np.ndarray]], tokens: bool, batch_size: int
) -> np.ndarray:
    """Encoder outputs of records of any lengths, in input order (records of one length share batches)."""
    lengths = {x.shape[-1] for _, x in inputs}
    if tokens and len(lengths) > 1:
        raise ValueError(f"tokens=true needs records of one length; these have {sorted(lengths)} samples")
    return by_length([x for _, x in inputs], lambda x: embed(encoder, x, tokens, batch_size))


@command("ecgjepa-embed")
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_key_values(
        sys.argv[1:] if argv is None else argv, OPTIONS, {"encoder", "input", "output"}, __doc__, {"tokens"}
    )
    resolved = resolve_encoder(args["encoder"])
    encoder, cfg, path = resolved.build(), resolved.config, resolved.source
    target_fs = float(cfg.sampling_frequency)
    tokens = args.get("tokens", "false").lower() == "true"
    normalize = args.get("normalize", "true").lower() != "false"
    constants = (
        normalisation_constants(resolved.preprocess, resolved.original_sources, args.get("source"))
        if normalize
        else None
    )
    leads = lead_subset(args.get("leads") or resolved.preprocess.get("leads"))
    source, output = Path(args["input"]), Path(args["output"])
    rejects: list[tuple[str, str]] = []
    if source.suffix == ".npy":
        fs = float(args["sampling_frequency"]) if "sampling_frequency" in args else None
        x = read_arrays(source, fs, target_fs)
        inputs = [(f"{source.name}[{i}]", row) for i, row in enumerate(x)]
    else:
        inputs = list(record_inputs(source, target_fs, cfg, rejects, leads))
    if not inputs:
        raise ValueError(f"input={source}: no usable record ({len(rejects)} rejected: {rejects[:3]})")
    for _, x in inputs:
        check_length(x.shape[-1], cfg)
    if constants is not None:
        inputs = [(rid, normalise(x, constants["mean"][:, None], constants["std"][:, None])) for rid, x in inputs]
    if len(leads) < len(CANONICAL_LEADS):  # zero after normalisation, before any conditioning
        inputs = [(rid, x * lead_mask(leads)[:, None]) for rid, x in inputs]
    conditioning = Conditioning(cfg.band_pass, cfg.standardise)
    if constants is not None and conditioning.active:
        inputs = [(rid, conditioning(x, target_fs)) for rid, x in inputs]
    z = embed_records(
        encoder, [(rid, x.astype(np.float32)) for rid, x in inputs], tokens, int(args.get("batch_size", 64))
    )
    save_npy_atomic(output, z)
    write_text_atomic(
        output.with_name(f"{output.stem}_records.csv"),
        pd.Series([rid for rid, _ in inputs], name="record_id").to_csv(index=False),
    )
    if source.suffix != ".npy":
        write_text_atomic(
            output.with_name(f"{output.stem}_rejects.csv"),
            pd.DataFrame(rejects, columns=list(REJECTS_COLUMNS)).to_csv(index=False),
        )
    print(
        f"wrote {output}: {z.shape} ({'tokens' if tokens else 'pooled'}) from {path}; {len(rejects)} record(s) rejected"
    )


if __name__ == "__main__":
    main()

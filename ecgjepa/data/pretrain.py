"""Pre-training data: a weighted mixture of memory-mapped source dumps, batched with block masks.

Each batch is a pure function of ``(seed, rank, batch index)``: a source is chosen per sample with
the configured weights, then a record uniformly (with replacement), then a random crop of
``channel_size`` samples. That makes runs reproducible, lets each DDP rank draw different samples,
and lets a resumed run continue the exact sample stream from the restored global step.

Records shorter than one crop (10 s for the paper's ViTs) are not pre-trained on, with a warning that counts
them; evaluation and prediction use records of any length from one of their crops up.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ecgjepa.core.dump_format import prepare_command
from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.core.errors import DumpError
from ecgjepa.core.leads import CANONICAL_LEADS, lead_mask, lead_subset
from ecgjepa.core.signal import resample
from ecgjepa.data.masks import BlockMaskSampler
from ecgjepa.data.sample import require_data_dir
from ecgjepa.data.transforms import Conditioning, normalise

log = logging.getLogger(__name__)


@dataclass
class SourceConfig:
    """One mixture component. ``mean``/``std`` (canonical lead order) null = the dump's own statistics."""

    weight: float
    folds: list[int] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    dump: str | None = None  # folder name under data_dir; defaults to the source key


@dataclass(frozen=True)
class LeadDropout:
    """Per sample, with ``probability``, keep only one of ``subsets`` (drawn uniformly) and zero the other leads
    after normalisation, in the context and target views alike (see ``data.lead_dropout`` in
    conf/data_base/pretrain.yaml). Drawn from its own stream of ``(seed, rank, batch index)``, so the crops are
    those of a run without it and a resumed run draws the same subsets."""

    probability: float = 0.0
    subsets: tuple[tuple[str, ...], ...] = ()

    STREAM = 0x1EAD  # the fourth word of the seed: a stream apart from the crops'

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> LeadDropout:
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"probability", "subsets"}
        if unknown:
            raise ValueError(f"data.lead_dropout: unknown key(s) {sorted(unknown)}; expected probability, subsets")
        probability = float(cfg.get("probability", 0.0))
        if not 0 <= probability <= 1:
            raise ValueError(f"data.lead_dropout.probability: expected a number in [0, 1], got {probability}")
        subsets = tuple(lead_subset(s, "data.lead_dropout.subsets") for s in cfg.get("subsets") or ())
        if probability > 0 and not subsets:
            raise ValueError("data.lead_dropout.subsets: name at least one lead subset, e.g. [[I], [I, II]]")
        return cls(probability, subsets)

    def masks(self, batch_size: int, seed: int, rank: int, batch_index: int) -> np.ndarray | None:
        """(B, 12) lead masks of one batch (1 kept, 0 zeroed), or None when lead dropout is off."""
        if self.probability == 0:
            return None
        rng = np.random.default_rng([seed, rank, batch_index, self.STREAM])
        dropped = rng.random(batch_size) < self.probability
        chosen = rng.integers(len(self.subsets), size=batch_size)
        table = np.stack([lead_mask(subset) for subset in self.subsets])
        return np.where(dropped[:, None], table[chosen], np.float32(1))


def patient_keys(dumps: list[SourceDump], names: list[str]) -> list[np.ndarray]:
    """Per source, each record's group as an int64 key unique across the sources: its patient's where the dump
    lists one, else its own (CMSC's positives). A source that lists no patient is named in a warning."""
    keys = []
    for number, (name, dump) in enumerate(zip(names, dumps, strict=True)):
        patients = dump.patients()
        if not any(patients):
            log.warning(
                "source '%s' lists no patient ids (%s has no patient column or it is empty): its records are "
                "grouped by recording only. Where the source gives patient ids, rebuild the dump to list them: %s "
                "--force",
                name,
                dump.dir / "index.csv",
                prepare_command(dump.source, dump.dir.parent),
            )
        groups = [f"p{patient}" if patient else f"r{row}" for row, patient in enumerate(patients)]
        keys.append((number << 40) + pd.factorize(np.asarray(groups, dtype=object))[0].astype(np.int64))
    return keys


def parse_sources(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, SourceConfig]:
    """Validate the ``data.sources`` mapping: known keys, 12-value statistics, weights summing to 1."""
    if not sources:
        raise ValueError("data.sources is empty: name at least one source with a weight")
    parsed: dict[str, SourceConfig] = {}
    for name, spec in sources.items():
        try:
            parsed[name] = SourceConfig(**dict(spec))
        except TypeError as err:
            raise ValueError(f"data.sources.{name}: {err}") from None
        cfg = parsed[name]
        if not cfg.weight > 0:
            raise ValueError(f"data.sources.{name}.weight must be > 0, got {cfg.weight}")
        for key in ("mean", "std"):
            value = getattr(cfg, key)
            if value is not None and len(value) != 12:
                raise ValueError(f"data.sources.{name}.{key} must have 12 values (one per lead), got {len(value)}")
        if cfg.std is not None and min(cfg.std) <= 0:
            raise ValueError(f"data.sources.{name}.std must be positive, got {cfg.std}")
    total = math.fsum(cfg.weight for cfg in parsed.values())
    if not math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-9):
        weights = {name: cfg.weight for name, cfg in parsed.items()}
        raise ValueError(f"data.sources weights must sum to 1, got {total!r} from {weights}")
    return parsed


class MixtureBatches(IterableDataset):
    """Infinite stream of ``(signals (B, 12, T) float32, keep_idx (B, K), pred_idx (B, M))``, or of
    ``(signals,)`` without ``masks`` (methods that draw their own); with ``patient_groups``, each batch ends with the
    (B,) int64 group of every crop (:func:`patient_keys`).

    With an ``input_rate`` below the dumps' rate, each crop of ``channel_size * fs / input_rate`` dumped samples is
    normalised, FFT-resampled to ``channel_size`` samples and conditioned (``conditioning``).

    Worker ``w`` of ``W`` produces batch indices ``start + w, start + w + W, ...``; the DataLoader
    returns them round-robin, so the stream is the same for any number of workers.
    """

    def __init__(
        self,
        dumps: dict[str, SourceDump],
        sources: dict[str, SourceConfig],
        channel_size: int,
        batch_size: int,
        masks: BlockMaskSampler | None,
        seed: int = 0,
        rank: int = 0,
        start_batch: int = 0,
        holdout_folds: list[int] | None = None,
        fs: int = 500,
        input_rate: int | None = None,
        conditioning: Conditioning | None = None,
        lead_dropout: LeadDropout | None = None,
        patient_groups: bool = False,
    ) -> None:
        super().__init__()
        self.fs, self.input_rate = fs, input_rate or fs
        self.lead_dropout = lead_dropout or LeadDropout()
        self.conditioning = conditioning or Conditioning()
        self.crop = round(channel_size * fs / self.input_rate)
        self.names = list(sources)
        self.dumps = [dumps[name] for name in self.names]
        self.weights = np.array([sources[name].weight for name in self.names], dtype=np.float64)
        self.weights /= self.weights.sum()
        self.rows = [
            dump.select(sources[name].folds, min_length=self.crop, exclude_folds=holdout_folds)
            for name, dump in zip(self.names, self.dumps, strict=True)
        ]
        for name, dump, rows in zip(self.names, self.dumps, self.rows, strict=True):
            short = len(dump.select(sources[name].folds, exclude_folds=holdout_folds)) - len(rows)
            if short:
                log.warning(
                    "source '%s': %d record(s) shorter than one crop (%d samples) are not pre-trained on",
                    name,
                    short,
                    self.crop,
                )
        self.groups = patient_keys(self.dumps, self.names) if patient_groups else None
        self.mean = []
        self.std = []
        for name, dump in zip(self.names, self.dumps, strict=True):
            mean = sources[name].mean if sources[name].mean is not None else dump.meta.get("mean")
            std = sources[name].std if sources[name].std is not None else dump.meta.get("std")
            if mean is None or std is None:
                raise DumpError(f"no normalisation statistics for '{name}': set data.sources.{name}.mean/std")
            # NOTE(parity): constants are cast to float16 and applied in float16, as the original does.
            self.mean.append(np.asarray(mean, dtype=np.float16))
            self.std.append(np.asarray(std, dtype=np.float16))
        self.mean, self.std = np.stack(self.mean), np.stack(self.std)  # (sources, 12)
        self.channel_size = channel_size
        self.batch_size = batch_size
        self.masks = masks
        self.seed = seed
        self.rank = rank
        self.start_batch = start_batch

    def draw(self, batch_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The crops of batch ``batch_index``: each sample's source, record row and first sample."""
        rng = np.random.default_rng([self.seed, self.rank, batch_index])
        choice = rng.choice(len(self.names), size=self.batch_size, p=self.weights)
        rows = np.empty(self.batch_size, dtype=np.int64)
        offsets = np.empty(self.batch_size, dtype=np.int64)
        for i, s in enumerate(choice):
            source_rows = self.rows[s]
            rows[i] = source_rows[rng.integers(len(source_rows))]
            offsets[i] = rng.integers(self.dumps[s].lengths[rows[i]] - self.crop + 1)
        return choice, rows, offsets

    def make_batch(self, batch_index: int) -> tuple[torch.Tensor, ...]:
        choice, rows, offsets = self.draw(batch_index)
        raw = np.empty((self.batch_size, self.crop, 12), dtype=np.float16)
        for i, (s, row, offset) in enumerate(zip(choice, rows, offsets, strict=True)):
            raw[i] = self.dumps[s].read(row, int(offset), self.crop)
        x = normalise(raw, self.mean[choice][:, None], self.std[choice][:, None])
        finite = np.isfinite(x).all(axis=(1, 2))
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            dump = self.dumps[choice[i]]
            raise DumpError(
                f"non-finite values in {dump.signals_path} record {dump.index['record_id'].iat[rows[i]]!r} "
                f"(row {rows[i]}); the dump must be NaN-free: rebuild it with data_prep"
            )
        kept = self.lead_dropout.masks(self.batch_size, self.seed, self.rank, batch_index)
        if kept is not None:
            x = x * kept[:, None, :].astype(x.dtype)
        if self.input_rate != self.fs:  # (B, T, 12) -> (T, B * 12) -> resampled -> (B, T', 12)
            b = x.shape[0]
            flat = resample(
                x.astype(np.float32).transpose(1, 0, 2).reshape(self.crop, b * 12), self.fs, self.input_rate
            )
            x = flat.reshape(-1, b, 12).transpose(1, 0, 2)
        signals = torch.from_numpy(np.ascontiguousarray(x)).transpose(1, 2).float()
        if self.conditioning.active:
            signals = torch.from_numpy(self.conditioning(signals.numpy(), self.input_rate))
        batch: tuple[torch.Tensor, ...] = (signals.contiguous(),)
        if self.masks is not None:
            mask_rng = self.masks.rng_for(batch_index)
            batch += self.masks.sample(self.batch_size, self.channel_size // self.masks.patch_size, mask_rng)
        if self.groups is not None:
            batch += (torch.from_numpy(np.array([self.groups[s][row] for s, row in zip(choice, rows, strict=True)])),)
        return batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        index = self.start_batch + worker
        while True:
            yield self.make_batch(index)
            index += num_workers


class PretrainDataModule(L.LightningDataModule):
    """Weighted multi-source pre-training data (ECG-JEPA pretrain.py and data/utils.py).

    Args:
        data_dir: folder holding one dump folder per source.
        sources: ``{name: {weight, folds, mean, std, dump}}``; weights must sum to 1.
        channel_size: samples of one input at ``input_rate`` (5000 = 10 s at 500 Hz).
        batch_size: samples per micro-batch (per device).
        global_batch_size: samples per micro-batch summed over all devices (``ecgjepa-train`` derives
            ``batch_size`` from it; provenance here).
        patch_size, min_block_size, min_keep_ratio, max_keep_ratio: mask parameters.
        num_workers: loader processes (null = one per CPU core, at most 16).
        pin_memory: pin host memory (null = when the trainer runs on a GPU).
        seed: base seed of the sample and mask streams.
        bundled_sample: ``data_dir`` holds the bundled PTB-XL sample's dump, made on first use.
        name: ``data=folder``: the name of one's own corpus (its dump folder; the sources refer to it).
        holdout_folds: folds left out of every source (see :meth:`SourceDump.record_folds`), e.g. ``[9, 10]``
            keeps the validation and test folds of PTB-XL and of the Challenge 2021 benchmark unseen.
        input_rate: Hz of the model's input (null = ``sampling_frequency``, the dumps'); crops are resampled to it.
        band_pass, standardise: the input conditioning a method asks for (see :class:`Conditioning`).
        masks: draw JEPA's block masks with every batch (false: the method draws its own).
        lead_dropout: ``{probability, subsets}``: see :class:`LeadDropout` (probability 0: off).
        patient_groups: end every batch with each crop's patient group (:func:`patient_keys`; CMSC's positives).
    """

    def __init__(
        self,
        data_dir: str,
        sources: Mapping[str, Mapping[str, Any]],
        channel_size: int,
        batch_size: int,
        global_batch_size: int | None,
        patch_size: int | None,
        min_block_size: int,
        min_keep_ratio: float,
        max_keep_ratio: float,
        num_workers: int | None,
        pin_memory: bool | None,
        seed: int,
        sampling_frequency: int,
        bundled_sample: bool = False,
        name: str | None = None,
        holdout_folds: list[int] | None = None,
        input_rate: int | None = None,
        band_pass: list[float] | None = None,
        standardise: str = "dataset",
        masks: bool = True,
        lead_dropout: Mapping[str, Any] | None = None,
        patient_groups: bool = False,
    ) -> None:
        super().__init__()
        self.patient_groups = patient_groups
        self.data_dir = Path(data_dir)
        self.lead_dropout = LeadDropout.from_config(lead_dropout)
        self.input_rate = input_rate or sampling_frequency
        if not 0 < self.input_rate <= sampling_frequency:
            raise ValueError(
                f"data.input_rate={input_rate}: expected a rate up to the dumps' {sampling_frequency} Hz "
                "(data.sampling_frequency)"
            )
        self.conditioning = Conditioning(tuple(band_pass) if band_pass else None, standardise)
        if masks and patch_size is None:
            raise ValueError(
                "data.masks=true draws JEPA's block masks of ViT patches, and this model has no model.patch_size: "
                "choose model=vit_*, or a method of this network's source (conf/method/, e.g. method=simclr)"
            )
        self.masks = masks
        self.sources = parse_sources(sources)
        self.channel_size = channel_size
        self.batch_size = batch_size
        self.global_batch_size = global_batch_size
        self.mask_args = (patch_size, min_block_size, min_keep_ratio, max_keep_ratio)
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.sampling_frequency = sampling_frequency
        self.bundled_sample = bundled_sample
        self.holdout_folds = list(holdout_folds) if holdout_folds else None
        self.dumps: dict[str, SourceDump] = {}

    @property
    def input_shape(self) -> dict[str, Any]:
        """The leads (the dumps' canonical order), the samples of one input and its conventions (rate, band-pass,
        standardisation): the encoder is built for them and records them."""
        return {
            "channels": list(CANONICAL_LEADS),
            "channel_size": self.channel_size,
            "sampling_frequency": self.input_rate,
            "band_pass": list(self.conditioning.band_pass) if self.conditioning.band_pass else None,
            "standardise": self.conditioning.standardise,
        }

    def setup(self, stage: str | None = None) -> None:
        require_data_dir(self.data_dir, "<source>", self.bundled_sample)
        for name, cfg in self.sources.items():
            if name not in self.dumps:
                dump = SourceDump(self.data_dir, cfg.dump or name)
                fs = dump.meta.get("sampling_frequency")
                if fs != self.sampling_frequency:
                    raise DumpError(
                        f"{dump.dir}: sampling_frequency {fs} Hz, but data.sampling_frequency is "
                        f"{self.sampling_frequency}"
                    )
                self.dumps[name] = dump

    def normalisation(self) -> dict[str, dict[str, list[float]]]:
        """Per-source normalisation constants actually used (for the encoder export)."""
        out = {}
        for name, cfg in self.sources.items():
            meta = self.dumps[name].meta if name in self.dumps else {}
            out[name] = {"mean": list(cfg.mean or meta.get("mean", [])), "std": list(cfg.std or meta.get("std", []))}
        return out

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        # Micro-batches already consumed: a resumed run continues the same stream.
        start = trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0
        masks = BlockMaskSampler(*self.mask_args, seed=self.seed, rank=rank) if self.masks else None
        dataset = MixtureBatches(
            self.dumps,
            self.sources,
            self.channel_size,
            self.batch_size,
            masks,
            self.seed,
            rank,
            start,
            self.holdout_folds,
            self.sampling_frequency,
            self.input_rate,
            self.conditioning,
            self.lead_dropout,
            self.patient_groups,
        )
        on_gpu = trainer is not None and trainer.strategy.root_device.type == "cuda"
        workers = self.num_workers if self.num_workers is not None else min(16, os.cpu_count() or 1)
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=workers,
            pin_memory=on_gpu if self.pin_memory is None else self.pin_memory,
            persistent_workers=False,
        )

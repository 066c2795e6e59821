"""The pre-training mixture (ecgjepa.data.pretrain): weights, sources and their keys are checked and named."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgjepa.train import run as train_run
from tests.helpers import files_under


def test_mixture_weights_must_sum_to_one(train_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"data.sources weights must sum to 1, got 0.5 from \{'ptbxl': 0.5\}"):
        train_run(train_cfg("data.sources.ptbxl.weight=0.5", output_dir=tmp_path / "out"))
    with pytest.raises(Exception, match=r"data.sources.ptbxl.weight must be > 0, got -1"):
        train_run(train_cfg("data.sources.ptbxl.weight=-1", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []


def test_unknown_source_names_the_missing_dump_and_the_make_command(
    train_cfg, sample_data_dir: Path, tmp_path: Path
) -> None:
    missing = re.escape(str(sample_data_dir / "sample" / "foo" / "signals.npy"))
    with pytest.raises(
        FileNotFoundError,
        match=rf"no dump for source 'foo': {missing} does not exist.*python -m data_prep foo --raw RAW_DIR",
    ):
        train_run(
            train_cfg("data.sources.ptbxl.weight=0.5", "+data.sources.foo.weight=0.5", output_dir=tmp_path / "out")
        )
    assert files_under(tmp_path / "out") == []


def test_unknown_source_key_is_named(train_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"data.sources.ptbxl: .*unexpected keyword argument 'wieght'"):
        train_run(train_cfg("+data.sources.ptbxl.wieght=1", output_dir=tmp_path / "out"))


def test_lead_dropout_draws_the_configured_subsets_at_the_configured_rate(train_cfg) -> None:
    from hydra.utils import instantiate

    def stream(*overrides: str):
        cfg = train_cfg("data.batch_size=64", "data.num_workers=0", *overrides)
        data = instantiate(cfg.data, patch_size=cfg.model.get("patch_size"), _convert_="all")
        data.setup()
        return data.train_dataloader().dataset

    dropping = stream("data.lead_dropout.probability=0.5", "data.lead_dropout.subsets=[[I],[I,II]]")
    plain = stream()
    kept_sets: list[tuple[int, ...]] = []
    for index in range(8):
        x, y = dropping.make_batch(index)[0], plain.make_batch(index)[0]
        kept = (x != 0).any(dim=-1)  # (B, 12) leads with a non-zero sample
        kept_sets += [tuple(np.flatnonzero(row.numpy())) for row in kept]
        torch.testing.assert_close(x, y * kept[:, :, None])  # the same crops; only the dropped leads differ
    counts = Counter(kept_sets)
    assert set(counts) == {tuple(range(12)), (0,), (0, 1)}
    assert abs(counts[tuple(range(12))] / len(kept_sets) - 0.5) < 0.08  # 512 samples, p = 0.5
    assert abs(counts[(0,)] - counts[(0, 1)]) < 0.2 * len(kept_sets)
    again = stream("data.lead_dropout.probability=0.5", "data.lead_dropout.subsets=[[I],[I,II]]")
    again.start_batch = 5  # a resumed run's stream starts at its step's batch
    torch.testing.assert_close(next(iter(again))[0], dropping.make_batch(5)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.lead_dropout.probability=1.5"], r"data.lead_dropout.probability: expected a number in \[0, 1\]"),
        (
            ["data.lead_dropout.probability=0.5", "data.lead_dropout.subsets=[[I,X]]"],
            r"data.lead_dropout.subsets: unknown \['X'\]",
        ),
    ],
)
def test_bad_lead_dropout_is_named(train_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(Exception, match=message):
        train_run(train_cfg(*overrides))

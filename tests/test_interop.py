"""Interoperability with the original ECG-JEPA checkpoints, both directions (issue: lossless, exact)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgjepa.callbacks.target_momentum import ema_update
from ecgjepa.formats.files import CheckpointError, load_file
from ecgjepa.formats.layouts import load_into, model_config_from_original
from ecgjepa.formats.original import convert
from ecgjepa.modules.jepa import JEPAModule
from ecgjepa.optim import adamw, param_groups
from ecgjepa.train import run
from ecgjepa.utils.hydra import load_group_option
from tests.helpers import PAPER_SCHEDULE, OriginalFixture, ScheduleRecorder


def assert_identical(a, b, where: str = "") -> None:
    """Same type, keys (in order), tensors bit for bit with the same dtype, plain values equal."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: {list(a)} vs {list(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


def test_original_to_ours_to_original_is_bit_exact(tmp_path: Path, original: OriginalFixture) -> None:
    convert(original.pretrain, tmp_path / "ours.ckpt")
    convert(tmp_path / "ours.ckpt", tmp_path / "back.pt", "original")
    convert(tmp_path / "ours.ckpt", tmp_path / "back_min.pt", "original_minified")
    assert_identical(load_file(original.pretrain), load_file(tmp_path / "back.pt"))
    assert_identical(load_file(original.minified), load_file(tmp_path / "back_min.pt"))
    convert(original.minified, tmp_path / "export")
    convert(tmp_path / "export", tmp_path / "min_back.pt", "original_minified")
    assert_identical(load_file(original.minified), load_file(tmp_path / "min_back.pt"))


def test_ours_to_original_to_ours_is_bit_exact(tmp_path: Path, train_cfg) -> None:
    run(train_cfg(output_dir=tmp_path / "run"))
    ours = tmp_path / "run" / "checkpoints" / "last.ckpt"
    convert(ours, tmp_path / "orig.pt", "original")
    original = load_file(tmp_path / "orig.pt")
    assert list(original) == ["model", "optimizer", "config", "step"] and len(original["config"]) == 36
    convert(tmp_path / "orig.pt", tmp_path / "again.ckpt")
    again, first = load_file(tmp_path / "again.ckpt"), load_file(ours)
    assert_identical(first["state_dict"], again["state_dict"])
    assert again["global_step"] == first["global_step"]
    assert_identical(first["optimizer_states"][0]["state"], again["optimizer_states"][0]["state"])
    # The original's evaluation strips target_encoder. and loads strictly into its encoder.
    minified = tmp_path / "min.pt"
    convert(ours, minified, "original_minified")
    ckpt = load_file(minified)
    encoder = JEPAModule(
        model_config_from_original(ckpt["config"]).to_dict(), load_group_option("optim", "paper")
    ).target_encoder
    load_into(encoder, {k[len("target_encoder.") :]: v for k, v in ckpt["model"].items()}, "min", strict=True)


def test_refuses_other_layouts_sizes_and_truncated_files(tmp_path: Path, original: OriginalFixture) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout with top-level keys \['weights'\]"):
        convert(tmp_path / "other.pt", tmp_path / "x.ckpt")
    data = original.pretrain.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        convert(tmp_path / "cut.pt", tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="cannot be converted to format=original"):
        convert(original.minified, tmp_path / "x.pt", "original")


def test_one_more_original_step_reproduces_the_golden_next_step(original: OriginalFixture) -> None:
    """Original order: set lr/wd, EMA *before* the forward, L1 loss, backward, AdamW (non-fused)."""
    golden = np.load(original.golden_npz)
    ckpt = load_file(original.pretrain)
    module = JEPAModule(model_config_from_original(ckpt["config"]).to_dict(), load_group_option("optim", "paper"))
    load_into(module, ckpt["model"], "pretrain", strict=True)
    optimizer = adamw(param_groups([module.encoder, module.predictor], 0.01), 1e-3, (0.9, 0.99), 1e-6, fused=False)
    optimizer.load_state_dict(ckpt["optimizer"])
    for group in optimizer.param_groups:
        group["lr"] = float(golden["next_step_lr"])
        if group["use_weight_decay"]:
            group["weight_decay"] = float(golden["next_step_wd"])
    before = {k: v.clone() for k, v in module.state_dict().items()}
    ema_update(module.target_encoder, module.encoder, float(golden["next_step_momentum"]))
    x, keep, pred = (torch.from_numpy(golden[k]) for k in ("x", "keep_idx", "pred_idx"))
    loss, _ = module.jepa_loss(x, keep, pred)
    loss.backward()
    optimizer.step()
    assert abs(loss.item() - float(golden["next_step_loss"])) <= 1e-6
    after = module.state_dict()
    for key in golden.files:
        if key.startswith("next_step_after."):
            name = key[len("next_step_after.") :]
            assert (after[name] - torch.from_numpy(golden[key])).abs().max().item() <= 1e-6, name
    keys = list(golden["next_step_keys"])
    abs_sum = dict(zip(keys, golden["next_step_delta_abs_sum"], strict=True))
    for prefix, tol in (("predictor.", 3e-2), ("target_encoder.", 1e-4)):
        ours = sum((after[k] - before[k]).abs().double().sum().item() for k in keys if k.startswith(prefix))
        theirs = sum(v for k, v in abs_sum.items() if k.startswith(prefix))
        assert abs(ours - theirs) / theirs <= tol, prefix


def test_training_continues_from_an_original_checkpoint(
    train_cfg, tmp_path: Path, caplog, original: OriginalFixture, ema_momenta: list[float]
) -> None:
    """The first step after the original's 3 runs at step 3's schedule values, not at step 2's."""
    recorder = ScheduleRecorder()
    metrics = run(
        train_cfg(
            *original.model_overrides,
            *PAPER_SCHEDULE,
            f"ckpt_path={original.pretrain}",
            "trainer.max_steps=4",
            "data.batch_size=2",
            "callbacks.encoder_export=null",
        ),
        extra_callbacks=[recorder],
    )
    assert np.isfinite(metrics["train/loss"])
    assert "RNG state do not exist" in caplog.text
    last = load_file(tmp_path / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4  # 3 steps of the original + 1 here
    assert recorder.lr == [pytest.approx(1.2997e-6, rel=1e-12)]  # lr_at(3); the original's step 2 ran at 1.1998e-6
    assert recorder.weight_decay == [pytest.approx(0.01 + 0.09 * (1 - math.cos(math.pi * 3 / 100_000)) / 2, rel=1e-9)]
    assert ema_momenta == [pytest.approx(0.998 + 0.0015 * 3 / 100_000, rel=1e-12)]


def test_a_model_size_mismatch_is_named(train_cfg, original: OriginalFixture) -> None:
    with pytest.raises(CheckpointError, match="original model differs"):
        run(train_cfg(f"ckpt_path={original.pretrain}"))

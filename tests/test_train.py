"""End-to-end pre-training on the real PTB-XL sample (CPU): smoke, EMA rule, resume, precision, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgjepa.callbacks.target_momentum import ema_update
from ecgjepa.train import run
from tests.conftest import REPO


def last_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_fast_run_writes_checkpoints_and_encoder_export(train_cfg, tmp_path: Path) -> None:
    metrics = run(train_cfg())
    assert np.isfinite(metrics["train/loss"])
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    export = torch.load(tmp_path / "encoder" / "encoder.pt", weights_only=True)
    assert export["format"] == "ecgjepa-encoder" and export["step"] == 5
    assert export["preprocess"]["sampling_frequency"] == 500
    assert len(export["preprocess"]["normalisation"]["ptbxl"]["std"]) == 12
    state = last_state(tmp_path)
    for key, value in export["state_dict"].items():
        assert torch.equal(value, state[f"target_encoder.{key}"])


def test_target_moves_only_by_the_ema_rule(train_cfg, tmp_path: Path) -> None:
    """After one step: target = lerp(initial target, new online encoder, 1 - m(0)); never a gradient."""
    from hydra.utils import instantiate

    cfg = train_cfg("trainer.max_steps=1", "optim.steps=10", "callbacks.model_checkpoint.every_n_train_steps=1")
    torch.manual_seed(0)
    initial = instantiate(cfg.module, _convert_="all")
    run(cfg)
    state = last_state(tmp_path)
    initial_target = {k: v.clone() for k, v in initial.target_encoder.state_dict().items()}
    online = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    target = initial.target_encoder
    target.load_state_dict(initial_target)
    online_module = initial.encoder
    online_module.load_state_dict(online)
    ema_update(target, online_module, 0.998)
    for key, value in target.state_dict().items():
        torch.testing.assert_close(state[f"target_encoder.{key}"], value, rtol=0, atol=1e-7)
    moved = [k for k in initial_target if not torch.equal(state[f"target_encoder.{k}"], initial_target[k])]
    assert moved, "the target encoder did not move"
    assert all(not p.requires_grad for p in initial.target_encoder.parameters())


def test_resume_reaches_the_same_weights(train_cfg, tmp_path: Path) -> None:
    common = ["optim.steps=6", "callbacks.model_checkpoint.every_n_train_steps=3", "seed=7"]
    run(train_cfg(*common, "trainer.max_steps=6", output_dir=tmp_path / "straight"))
    run(train_cfg(*common, "trainer.max_steps=3", output_dir=tmp_path / "killed"))
    run(train_cfg(*common, "trainer.max_steps=6", "ckpt_path=last", output_dir=tmp_path / "killed"))
    straight, resumed = last_state(tmp_path / "straight"), last_state(tmp_path / "killed")
    assert torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_bf16_mixed_on_cpu(train_cfg) -> None:
    metrics = run(train_cfg("trainer.precision=bf16-mixed", "trainer.max_steps=2"))
    assert np.isfinite(metrics["train/loss"])


def test_vit_b_runs_two_steps(train_cfg) -> None:
    metrics = run(train_cfg("model=vit_b", "trainer.max_steps=2", "data.batch_size=2", "callbacks.encoder_export=null"))
    assert np.isfinite(metrics["train/loss"])


def test_forward_ema_mode_with_accumulation(train_cfg) -> None:
    metrics = run(train_cfg("optim.ema_update_on=forward", "trainer.accumulate_grad_batches=2", "trainer.max_steps=2"))
    # momentum is indexed by micro-batch: after 2 optimizer steps x 2 micro-batches, k = 3
    assert metrics["train/momentum"] == pytest.approx(0.998 + 0.0015 * 3 / 5)


def test_missing_data_path_is_named(train_cfg, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run(train_cfg(f"paths.data_dir={tmp_path / 'nowhere'}"))


def test_dump_of_the_wrong_shape_is_named(train_cfg, tmp_path: Path, sample_data_dir: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "ptbxl").mkdir(parents=True)
    for name in ("index.csv", "meta.json"):
        (bad / "ptbxl" / name).write_bytes((sample_data_dir / "sample" / "ptbxl" / name).read_bytes())
    np.save(bad / "ptbxl" / "signals.npy", np.zeros((10, 8), dtype=np.float16))
    with pytest.raises(ValueError, match=r"signals.npy: expected a float16 array of shape \(samples, 12\)"):
        run(train_cfg(f"data.data_dir={bad}"))


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path: Path, sample_data_dir: Path) -> None:
    env = {**os.environ, "ECGJEPA_DATA_DIR": str(sample_data_dir), "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "ecgjepa.train",
        "debug=fast",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        f"hydra.run.dir={tmp_path}",
        "trainer.max_steps=3",
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3

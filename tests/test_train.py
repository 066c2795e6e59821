"""End-to-end pre-training on the real PTB-XL sample (CPU): smoke, EMA rule, resume, precision, DDP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ecgjepa.callbacks.target_momentum import ema_update
from ecgjepa.formats.export import read_export
from ecgjepa.formats.files import CheckpointError
from ecgjepa.train import run
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import resolve_ckpt_path
from tests.helpers import (
    METHOD_TEST_OVERRIDES,
    PAPER_SCHEDULE,
    REPO,
    TINY,
    ScheduleRecorder,
    env_for,
    files_under,
    load,
    pretraining_module,
)


def last_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_fast_run_writes_checkpoints_and_encoder_export(train_cfg, tmp_path: Path) -> None:
    metrics = run(train_cfg())
    assert np.isfinite(metrics["train/loss"])
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    _, weights, description = read_export(tmp_path / "encoder")
    assert description["format"] == "ecgjepa-encoder" and description["pretraining"]["step"] == 5
    assert description["input"]["sampling_frequency"] == 500
    assert len(description["normalisation"]["ptbxl"]["std"]) == 12
    state = last_state(tmp_path)
    for key, value in weights.items():
        assert torch.equal(value, state[f"target_encoder.{key}"])


def test_target_moves_only_by_the_ema_rule(train_cfg, tmp_path: Path) -> None:
    """After one step: target = lerp(initial target, new online encoder, 1 - m(0)); never a gradient."""
    cfg = train_cfg("trainer.max_steps=1", "optim.steps=10", "callbacks.model_checkpoint.every_n_train_steps=1")
    torch.manual_seed(0)
    initial = pretraining_module(cfg)
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


def test_forward_ema_mode_with_accumulation(train_cfg) -> None:
    metrics = run(
        train_cfg(
            "callbacks.target_momentum.update_on=forward", "trainer.accumulate_grad_batches=2", "trainer.max_steps=2"
        )
    )
    # momentum is indexed by micro-batch: after 2 optimizer steps x 2 micro-batches, k = 3
    assert metrics["train/momentum"] == pytest.approx(0.998 + 0.0015 * 3 / 5)


def test_missing_data_path_is_named(train_cfg, tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{nowhere} does not exist.* python -m data_prep <source>"):
        run(train_cfg("data=ptbxl", f"paths.data_dir={nowhere}"))


def test_the_bundled_sample_is_prepared_on_first_use(train_cfg, tmp_path: Path, caplog) -> None:
    """The default data needs no preparation step: its dump appears, whole, the first time it is used."""
    fresh = tmp_path / "fresh"
    with caplog.at_level("INFO"):
        run(train_cfg(f"paths.data_dir={fresh}", "trainer.max_steps=1", output_dir=tmp_path / "one"))
    dump = fresh / "sample" / "ptbxl"
    assert sorted(p.name for p in dump.iterdir()) == [
        "index.csv",
        "meta.json",
        "ptbxl_database.csv",
        "rejects.csv",
        "scp_statements.csv",
        "signals.npy",
    ]
    assert "preparing the bundled PTB-XL sample's dump" in caplog.text
    assert not [p for p in (fresh / "sample").iterdir() if p.name.startswith(".ptbxl-")]  # no staging left
    made = (dump / "signals.npy").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level("INFO"):
        run(train_cfg(f"paths.data_dir={fresh}", "trainer.max_steps=1", output_dir=tmp_path / "two"))
    assert "preparing" not in caplog.text and (dump / "signals.npy").stat().st_mtime_ns == made


def test_dump_of_the_wrong_shape_is_named(train_cfg, tmp_path: Path, sample_data_dir: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "ptbxl").mkdir(parents=True)
    for name in ("index.csv", "meta.json"):
        (bad / "ptbxl" / name).write_bytes((sample_data_dir / "sample" / "ptbxl" / name).read_bytes())
    np.save(bad / "ptbxl" / "signals.npy", np.zeros((10, 8), dtype=np.float16))
    with pytest.raises(ValueError, match=r"signals.npy: expected a float16 array of shape \(samples, 12\)"):
        run(train_cfg(f"data.data_dir={bad}"))


METHODS = tuple(METHOD_TEST_OVERRIDES)
# The networks each method trains or keeps (their weights must agree across DDP ranks).
NETWORKS = {
    "jepa": {"encoder", "predictor", "target_encoder"},
    "simclr": {"encoder", "projector"},
    "byol": {"encoder", "projector", "predictor", "target_encoder", "target_projector"},
    "moco_v3": {"encoder", "projector", "predictor", "target_encoder", "target_projector"},
    "cpc": {"encoder", "predict"},
    "cmsc": {"encoder", "projection"},
}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_process_ddp_on_cpu_shares_the_global_batch(tmp_path: Path, sample_data_dir: Path, method: str) -> None:
    """gloo, 2 ranks, global batch 8: each rank trains on 4 samples per step and the ranks' networks (JEPA's EMA
    target among them) stay equal."""
    env = {**os.environ, "ECGJEPA_DATA_DIR": str(sample_data_dir), "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "ecgjepa.train",
        "debug=fast",
        f"method={method}",
        *METHOD_TEST_OVERRIDES[method],
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        f"hydra.run.dir={tmp_path}",
        "trainer.max_steps=3",
        "data.global_batch_size=8",
        "data.batch_size=null",
        "+callbacks.probe._target_=tests.ddp_probe.RankProbe",
        f"+callbacks.probe.out_dir={tmp_path / 'probe'}",
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert "batch: 4 per device x 2 process(es) = 8 per step (global)" in result.stdout + result.stderr
    ranks = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in ranks:
        assert report["world_size"] == 2 and report["batch_sizes"] == [4, 4, 4]
    assert set(ranks[0]["networks"]) == NETWORKS.get(method, {"encoder", "decoder"})
    assert ranks[0]["networks"] == ranks[1]["networks"]


@pytest.mark.parametrize(
    ("per_device", "total", "world", "expected"),
    [(32, None, 1, (32, 32)), (32, None, 4, (32, 128)), (None, 2048, 8, (256, 2048)), (256, 2048, 8, (256, 2048))],
)
def test_batch_size_and_global_batch_size(per_device, total, world, expected) -> None:

    from ecgjepa.train import set_batch_size

    data = OmegaConf.create({"batch_size": per_device, "global_batch_size": total})
    set_batch_size(data, world)
    assert (data.batch_size, data.global_batch_size) == expected


@pytest.mark.parametrize(
    ("per_device", "total", "world", "message"),
    [
        (None, 2048, 3, r"data.global_batch_size=2048 cannot be split evenly over 3 processes"),
        (64, 2048, 8, r"data.batch_size=64 per device x 8 processes != data.global_batch_size=2048"),
        (None, None, 1, r"data.batch_size and data.global_batch_size are both null"),
    ],
)
def test_a_batch_that_does_not_divide_is_refused(per_device, total, world, message) -> None:

    from ecgjepa.train import set_batch_size

    with pytest.raises(ValueError, match=message):
        set_batch_size(OmegaConf.create({"batch_size": per_device, "global_batch_size": total}), world)


def test_the_trainer_applies_the_original_schedules_at_each_step(train_cfg, ema_momenta: list[float]) -> None:
    """Learning rate and weight decay on the optimizer, momentum on the EMA: the values the original used at
    steps 0, 1, 2 of the reference run (golden.json), from our trainer's own schedule callbacks."""
    golden = json.loads(TINY.golden_json.read_text())["train"]
    recorder = ScheduleRecorder()
    run(
        train_cfg(*TINY.model_overrides, *PAPER_SCHEDULE, "trainer.max_steps=3", "data.batch_size=2"),
        extra_callbacks=[recorder],
    )
    assert recorder.lr == pytest.approx(golden["lr"], rel=1e-12)
    assert recorder.weight_decay == pytest.approx(golden["wd"], rel=1e-9)
    assert ema_momenta == pytest.approx(golden["momentum"], rel=1e-12)


def test_resuming_another_model_size_or_a_classifier_is_refused(
    train_cfg, tiny_encoder_run: Path, tmp_path: Path
) -> None:
    tiny = tiny_encoder_run / "checkpoints" / "last.ckpt"
    message = rf"{re.escape(str(tiny))}: the checkpoint's model differs from model=.*'dim': \(32, 192\)"
    with pytest.raises(CheckpointError, match=message):
        train_run(train_cfg("model=vit_xs", f"ckpt_path={tiny}", output_dir=tmp_path / "out"))
    classifier = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"protocol": {}, "model": {}}}, classifier)
    message = re.escape(f"{classifier}: a lightning-eval checkpoint cannot resume pre-training")
    with pytest.raises(CheckpointError, match=message):
        train_run(train_cfg(f"ckpt_path={classifier}", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []
    message = re.escape(f"{tiny}: a method=jepa checkpoint cannot resume method=st_mem")
    with pytest.raises(CheckpointError, match=message):
        train_run(train_cfg("method=st_mem", f"ckpt_path={tiny}", output_dir=tmp_path / "other"))


STEPS = 30


def train_command(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ecgjepa.train",
        "debug=fast",
        "seed=7",
        "data.batch_size=8",
        f"trainer.max_steps={STEPS}",
        f"optim.steps={STEPS}",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "callbacks.model_checkpoint.save_top_k=1",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def kill_after_checkpoint(cmd: list[str], run_dir: Path, env: dict[str, str], step: int) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``step_<step>.ckpt`` exists (it may be writing the next one)."""
    marker = run_dir / "checkpoints" / f"step_{step:06d}.ckpt"
    proc = subprocess.Popen(cmd, cwd=run_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {stderr.decode()[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_sigkilled_run_resumes_to_the_same_weights(tmp_path: Path, sample_data_dir: Path, method: str) -> None:
    """Data, masks (JEPA's from the data stream, the others' from the step's seed), augmentations and negatives
    (from the step's seed) and weights continue exactly."""
    env = env_for(sample_data_dir)
    method_args = [f"method={method}", *METHOD_TEST_OVERRIDES[method]]
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    kill_after_checkpoint(train_command(killed_dir, *method_args), killed_dir, env, step=3)
    steps_on_disk = [load(p)["global_step"] for p in (killed_dir / "checkpoints").glob("*.ckpt")]
    assert max(steps_on_disk) < STEPS, "the kill came too late to interrupt the run"

    resumed, straight = (
        train_command(killed_dir, *method_args, "ckpt_path=last"),
        train_command(straight_dir, *method_args),
    )
    for cmd in (resumed, straight):
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        if "ckpt_path=last" in cmd:
            assert "resuming from" in done.stdout + done.stderr

    reference, result = load(straight_dir / "checkpoints" / "last.ckpt"), load(killed_dir / "checkpoints" / "last.ckpt")
    assert reference["global_step"] == result["global_step"] == STEPS
    assert reference["state_dict"].keys() == result["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(value, result["state_dict"][key]), key
    for ref_state, res_state in zip(
        reference["optimizer_states"][0]["state"].values(), result["optimizer_states"][0]["state"].values(), strict=True
    ):
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(ref_state[key], res_state[key])
    assert not list((killed_dir / "checkpoints").glob("*.tmp")), "a leftover .tmp was not replaced"


def test_resume_skips_half_written_and_truncated_checkpoints(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    good = {"state_dict": {"w": torch.arange(1000.0)}, "global_step": 3}
    torch.save(good, folder / "step_000003.ckpt")
    data = (folder / "step_000003.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])  # a truncated newest checkpoint
    (folder / "step_000004.ckpt.tmp").write_bytes(data[:100])  # a write killed half-way
    (folder / "step_000004.ckpt").write_bytes(b"")  # an empty file under a final name
    now = time.time()
    for age, name in enumerate(("step_000004.ckpt.tmp", "step_000004.ckpt", "last.ckpt", "step_000003.ckpt")):
        os.utime(folder / name, (now - age, now - age))
    assert resolve_ckpt_path("last", tmp_path) == str(folder / "step_000003.ckpt")
    assert resolve_ckpt_path(str(tmp_path), "/unused") == str(folder / "step_000003.ckpt")
    (folder / "step_000003.ckpt").unlink()
    assert resolve_ckpt_path("last", tmp_path) is None  # nothing readable: start afresh
    with pytest.raises(FileNotFoundError, match=rf"no readable \*\.ckpt in {folder}"):
        resolve_ckpt_path(str(folder), tmp_path)


def test_wandb_offline_without_network_or_key(train_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = train_cfg("logger=wandb", "trainer.max_steps=2")
    assert cfg.logger.wandb.offline is True
    metrics = run(cfg)
    assert np.isfinite(metrics["train/loss"])
    assert list((tmp_path / "wandb").glob("offline-run-*"))

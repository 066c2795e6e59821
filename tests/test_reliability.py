"""Reliability (issue 5): a SIGKILLed training run resumes bit-exactly, half-written checkpoints are skipped,
a non-finite loss stops the run before a poisoned checkpoint exists, and evaluation is the same on 1 and 2
processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from ecgjepa.formats.checkpoint_io import AtomicCheckpointIO
from ecgjepa.modules.jepa import JEPAModule, NonFiniteLossError
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import load_group_option, resolve_ckpt_path
from tests.conftest import REPO


def env_for(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "ECGJEPA_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# --- kill and resume -------------------------------------------------------------------------------------------


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
def test_sigkilled_run_resumes_to_the_same_weights(tmp_path: Path, sample_data_dir: Path) -> None:
    env = env_for(sample_data_dir)
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    kill_after_checkpoint(train_command(killed_dir), killed_dir, env, step=3)
    steps_on_disk = [load(p)["global_step"] for p in (killed_dir / "checkpoints").glob("*.ckpt")]
    assert max(steps_on_disk) < STEPS, "the kill came too late to interrupt the run"

    for cmd in (train_command(killed_dir, "ckpt_path=last"), train_command(straight_dir)):
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


def test_atomic_checkpoint_io_never_exposes_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(10)}, path)

    def crash_half_way(obj: object, f) -> None:
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_half_way)
    for target in (path, tmp_path / "checkpoints" / "step_000002.ckpt"):
        with pytest.raises(OSError, match="disk full"):
            io.save_checkpoint({"step": 2, "w": torch.zeros(10)}, target)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1  # the previous file is intact under the final name
    assert not (tmp_path / "checkpoints" / "step_000002.ckpt").exists()  # no partial file under a final name
    assert resolve_ckpt_path("last", tmp_path) == str(path)


@pytest.mark.slow
def test_atomic_checkpoint_io_survives_sigkill(tmp_path: Path) -> None:
    """A process saving in a loop is killed at an arbitrary moment: the final name always holds a whole file."""
    path = tmp_path / "last.ckpt"
    script = (
        "import sys, torch\n"
        "from ecgjepa.formats.checkpoint_io import AtomicCheckpointIO\n"
        "io = AtomicCheckpointIO()\n"
        "for i in range(100000):\n"
        "    io.save_checkpoint({'i': i, 'w': torch.full((1_000_000,), float(i))}, sys.argv[1])\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], env=env_for(tmp_path), stdout=subprocess.PIPE, text=True
    )
    for _ in range(4):
        assert proc.stdout.readline(), "the writer died"
    time.sleep(0.013)
    proc.kill()
    proc.wait()
    ckpt = load(path)
    assert ckpt["i"] >= 3 and torch.equal(ckpt["w"], torch.full((1_000_000,), float(ckpt["i"])))


# --- non-finite loss -----------------------------------------------------------------------------------------


class PoisonWeights(L.Callback):
    """Write a NaN into an online-encoder weight just before the training step ``at_step``."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.encoder.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize("interval", [1, 4])
def test_non_finite_loss_stops_before_a_poisoned_checkpoint(train_cfg, tmp_path: Path, interval: int) -> None:
    # interval 1: stops before the poisoned optimiser step; 4: the flag stays on the device until the next
    # checkpoint (here: the next step) reads it. Either way no poisoned checkpoint or export exists.
    cfg = train_cfg(
        "trainer.max_steps=6",
        "optim.steps=6",
        f"finite_check_interval={interval}",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "+callbacks.poison._target_=tests.test_reliability.PoisonWeights",
        "+callbacks.poison.at_step=3",
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at global step 3"):
        train_run(cfg)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [
        "last.ckpt",
        "step_000001.ckpt",
        "step_000002.ckpt",
        "step_000003.ckpt",
    ]
    last = load(folder / "last.ckpt")
    assert last["global_step"] == 3  # the last good state, saved before the poisoned step
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "encoder").exists()  # no export of the failed run


def test_deferred_finite_check_still_stops_before_the_export(train_cfg, tmp_path: Path) -> None:
    cfg = train_cfg(
        "trainer.max_steps=5",
        "optim.steps=5",
        "finite_check_interval=50",  # never reached by the step count: the end-of-training check must catch it
        "callbacks.model_checkpoint.every_n_train_steps=100",
        "+callbacks.poison._target_=tests.test_reliability.PoisonWeights",
        "+callbacks.poison.at_step=3",
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at global step 3"):
        train_run(cfg)
    assert not (tmp_path / "encoder").exists()


def test_finite_check_interval_must_be_a_positive_integer() -> None:
    tiny = {"dim": 32, "depth": 1, "num_heads": 2, "pred_dim": 16, "pred_depth": 1, "pred_num_heads": 2}
    with pytest.raises(ValueError, match="finite_check_interval: expected an integer >= 1, got 0"):
        JEPAModule(tiny, load_group_option("optim", "paper"), finite_check_interval=0)


def test_target_std_collapse_diagnostic_is_logged(train_cfg, tmp_path: Path) -> None:
    train_run(train_cfg("logger=csv", "trainer.max_steps=3", "optim.steps=3"))
    metrics = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    values = metrics["train/target_std"].dropna()
    assert len(values) == 3 and (values > 0).all() and np.isfinite(values).all()


# --- distributed evaluation ----------------------------------------------------------------------------------

EVAL_ARGS = [
    "dataset=ptbxl_sample",
    "logger=none",
    "callbacks.lr_monitor=null",
    "task=superdiagnostic",
    "protocol.batch_size=16",
    # odd-sized folds (57 and 47 records): DistributedSampler pads rank 1 with a repeated record
    "dataset.val_fold=1",
    "dataset.test_fold=5",
]


@pytest.mark.slow
def test_ddp_evaluation_of_a_fixed_checkpoint_matches_one_process(
    eval_cfg, tiny_encoder_run: Path, tmp_path: Path, sample_data_dir: Path
) -> None:
    from ecgjepa.eval import run as eval_run

    # A fixed classifier (encoder + trained attentive head), then evaluated with protocol.steps=0.
    eval_run(eval_cfg(f"encoder={tiny_encoder_run}", output_dir=tmp_path / "linear"))
    fixed = [f"encoder={tmp_path / 'linear'}", "protocol.steps=0", *EVAL_ARGS]
    single = eval_run(eval_cfg(*fixed, output_dir=tmp_path / "single"))
    cmd = [
        sys.executable,
        "-m",
        "ecgjepa.eval",
        *fixed,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        f"hydra.run.dir={tmp_path / 'ddp'}",
    ]
    result = subprocess.run(
        cmd, cwd=tmp_path, env=env_for(sample_data_dir), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("starting from the classifier (encoder + head)") == 2  # both ranks ran
    assert output.count("test macro AUROC") == 1  # ... and only rank 0 wrote the outputs

    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["num_records"] == single["num_records"]
    assert (single["num_records"]["val"], single["num_records"]["test"]) == (57, 47)
    assert ddp["test_auroc"] == pytest.approx(single["test_auroc"], abs=1e-6)
    assert ddp["val_auroc"] == pytest.approx(single["val_auroc"], abs=1e-6)
    one, two = np.load(tmp_path / "single" / "predictions.npz"), np.load(tmp_path / "ddp" / "predictions.npz")
    for key in ("val", "test"):
        np.testing.assert_array_equal(one[f"{key}_targets"], two[f"{key}_targets"])  # same records, same order
        np.testing.assert_allclose(one[f"{key}_predictions"], two[f"{key}_predictions"], rtol=0, atol=1e-6)
    rank1_log = (tmp_path / "ddp" / "train_ddp_process_1.log").read_text()
    assert "test macro AUROC" not in rank1_log
    assert not list((tmp_path / "ddp").glob("*.tmp"))


@pytest.mark.slow
def test_multirun_with_ddp_is_refused_fast(tmp_path: Path, sample_data_dir: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "ecgjepa.eval",
        "-m",
        "seed=0,1",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "encoder=vit_tiny",
        *EVAL_ARGS,
        "protocol.steps=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    started = time.monotonic()
    result = subprocess.run(
        cmd, cwd=tmp_path, env=env_for(sample_data_dir), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "a Hydra multirun cannot launch DDP jobs (trainer=ddp)" in result.stderr
    assert not list((tmp_path / "sweep").rglob("metrics.json"))
    assert not list((tmp_path / "sweep").rglob("*.ckpt"))
    assert time.monotonic() - started < 60

"""File formats (ecgjepa.formats): atomic checkpoint writes, refusal of truncated and code-carrying
checkpoints, and the encoder export read back by ecgjepa.load_encoder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ecgjepa
from ecgjepa.eval import run as eval_run
from ecgjepa.export import export
from ecgjepa.formats.checkpoint_io import AtomicCheckpointIO
from ecgjepa.formats.files import CheckpointError
from ecgjepa.formats.layouts import load_encoder_state, load_into
from ecgjepa.models import VisionTransformer
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import resolve_ckpt_path
from tests.helpers import env_for, files_under, load

RUNNERS = {
    "train-resume": lambda train_cfg, eval_cfg, path, out: train_run(train_cfg(f"ckpt_path={path}", output_dir=out)),
    "eval-encoder": lambda train_cfg, eval_cfg, path, out: eval_run(eval_cfg(f"encoder={path}", output_dir=out)),
    "eval-resume": lambda train_cfg, eval_cfg, path, out: eval_run(
        eval_cfg("encoder=vit_tiny", f"ckpt_path={path}", output_dir=out)
    ),
}


@pytest.mark.parametrize("runner", RUNNERS)
def test_truncated_checkpoint_is_named(train_cfg, eval_cfg, tiny_encoder_run: Path, tmp_path: Path, runner) -> None:
    data = (tiny_encoder_run / "checkpoints" / "last.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=re.escape(f"{cut}: cannot read the checkpoint (truncated or corrupted?)")
    ):
        RUNNERS[runner](train_cfg, eval_cfg, cut, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


class Payload:
    """A custom class: pickling an instance stores a reference to code (tests.test_formats.Payload)."""

    def __init__(self) -> None:
        self.weights = torch.zeros(3)


class RunsCode:
    """Unpickling this would call os.mkdir(marker): weights_only=True must refuse before that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("runner", RUNNERS)
def test_checkpoint_with_pickled_code_is_refused(train_cfg, eval_cfg, tmp_path: Path, runner) -> None:
    marker = tmp_path / "code-ran"
    for name, payload in (("custom.ckpt", Payload()), ("code.ckpt", RunsCode(marker))):
        torch.save({"state_dict": {"x": payload}, "global_step": 1}, tmp_path / name)
        message = f"{tmp_path / name}: refused to load: it is not a plain-tensor checkpoint (weights_only=True)"
        with pytest.raises(CheckpointError, match=re.escape(message)):
            RUNNERS[runner](train_cfg, eval_cfg, tmp_path / name, tmp_path / "out")
    assert not marker.exists()
    assert files_under(tmp_path / "out") == []


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


def test_export_and_load_encoder_give_the_checkpoint_embeddings(tiny_encoder_run: Path, tmp_path: Path) -> None:
    out = export(tiny_encoder_run, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["input"]["sampling_frequency"] == 500 and config["input"]["patch_size"] == 25
    assert config["pretraining"]["data"] == {"ptbxl": 1.0} and config["pretraining"]["step"] == 5
    assert len(config["normalisation"]["ptbxl"]["mean"]) == 12
    assert "## Evaluation results" in (out / "README.md").read_text()
    encoder = ecgjepa.load_encoder(str(out))
    assert not encoder.training
    cfg, state, _ = load_encoder_state(tiny_encoder_run / "checkpoints" / "last.ckpt")
    reference = VisionTransformer(cfg).eval()
    load_into(reference, state, "last.ckpt")
    x = torch.randn(2, 12, 5000)
    with torch.no_grad():
        assert torch.equal(encoder(x), reference(x))

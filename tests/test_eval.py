"""PTB-XL evaluation end to end on the bundled real sample: protocols, encoders, outputs, crops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ecgjepa.core.records import read_wfdb
from ecgjepa.embed import main as embed_main
from ecgjepa.eval import run
from ecgjepa.formats.files import CheckpointError
from ecgjepa.modules.classifier import ClassifierModule, crop_batch, crop_starts
from ecgjepa.utils.hydra import load_group_option
from tests.helpers import DATA, REPO, OriginalFixture, env_for, model_config

PROTOCOL_LINEAR = load_group_option("protocol", "linear")


def check_outputs(out: Path, classes: int) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = np.load(out / "predictions.npz")
    assert set(predictions.files) == {"val_targets", "val_predictions", "test_targets", "test_predictions"}
    assert predictions["test_predictions"].shape == predictions["test_targets"].shape
    assert predictions["test_targets"].shape[1] == classes == len(metrics["classes"])
    expected = roc_auc_score(predictions["test_targets"], predictions["test_predictions"], average="macro")
    assert metrics["test_auroc"] == pytest.approx(expected, abs=1e-5)
    assert {"class", "auroc", "support"} <= set(metrics["per_class"][0])
    assert metrics["versions"]["torch"] and "config" in metrics
    assert (out / "checkpoints" / "best.ckpt").is_file()
    return metrics


def test_linear_probe_end_to_end(eval_cfg, tiny_encoder_run: Path, tmp_path: Path) -> None:
    metrics = run(eval_cfg(f"encoder={tiny_encoder_run}"))
    check_outputs(tmp_path, 5)
    assert metrics["classes"] == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert metrics["protocol"] == "linear"
    assert 0 <= metrics["test_auroc"] <= 1


def test_bf16_inference_changes_only_the_rounding_of_the_predictions(
    eval_cfg, tiny_encoder_run: Path, tmp_path: Path
) -> None:
    runs = {}
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / precision
        # One validation (step 6): both runs test the same weights, whatever bf16 does to the val AUROC.
        overrides = [
            f"encoder={tiny_encoder_run}",
            f"accel.inference_precision={precision}",
            "protocol.checkpoint_interval=6",
        ]
        metrics = run(eval_cfg(*overrides, output_dir=out))
        runs[precision] = metrics, np.load(out / "predictions.npz")["test_predictions"]
    (fp32_metrics, fp32), (bf16_metrics, bf16) = runs["32-true"], runs["bf16-mixed"]
    # Training is float32 in both (trainer=cpu): only the validation/test forwards differ.
    assert not np.array_equal(fp32, bf16)
    np.testing.assert_allclose(bf16, fp32, atol=0.02)
    assert bf16_metrics["test_auroc"] == pytest.approx(fp32_metrics["test_auroc"], abs=0.02)
    assert bf16_metrics["config"]["accel"]["inference_precision"] == "bf16-mixed"


def test_float32_inference_ignores_the_trainers_bf16_autocast() -> None:
    cfg = model_config(depth=1).to_dict()
    torch.manual_seed(0)
    reference = ClassifierModule(cfg, PROTOCOL_LINEAR, 3, "multilabel", 500).eval()
    x, targets, index = torch.randn(2, 12, 5000), torch.zeros(2, 3), torch.arange(2)
    with torch.no_grad():
        expected = reference(x).sigmoid()
    probs = {}
    for precision in ("32-true", "bf16-mixed"):
        module = ClassifierModule(cfg, PROTOCOL_LINEAR, 3, "multilabel", 500, inference_precision=precision).eval()
        module.load_state_dict(reference.state_dict())
        # Lightning's bf16-mixed precision plugin runs validation_step inside such an autocast.
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            module._collect("val", (x, targets, index))
        probs[precision] = module._outputs["val"][0][:, 1:4]
    assert torch.equal(probs["32-true"], expected)
    assert not torch.equal(probs["bf16-mixed"], expected)
    torch.testing.assert_close(probs["bf16-mixed"], expected, atol=0.02, rtol=0)


def test_inference_precision_is_checked(eval_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = model_config(depth=1)
    message = r"inference_precision: expected one of \(.*'32-true', 'bf16-mixed'\), got 'bf16'"
    with pytest.raises(ValueError, match=message):
        ClassifierModule(cfg.to_dict(), PROTOCOL_LINEAR, 3, "multilabel", 500, inference_precision="bf16")
    # A run refuses it before loading any data.
    from ecgjepa.data.ptbxl_datamodule import PTBXLDataModule

    monkeypatch.setattr(PTBXLDataModule, "setup", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(ValueError, match=message):
        run(eval_cfg("encoder=vit_tiny", "accel.inference_precision=bf16"))


def test_finetune_and_lpft_start_from_the_linear_head(eval_cfg, tiny_encoder_run: Path, tmp_path: Path) -> None:
    run(eval_cfg(f"encoder={tiny_encoder_run}", output_dir=tmp_path / "linear"))
    metrics = run(eval_cfg("protocol=finetune", f"encoder={tiny_encoder_run}", output_dir=tmp_path / "ft"))
    assert metrics["protocol"] == "finetune"
    best = torch.load(tmp_path / "linear" / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    cfg = eval_cfg("protocol=finetune_after_linear", f"encoder={tmp_path / 'linear'}", output_dir=tmp_path / "lpft")
    from hydra.utils import instantiate

    from ecgjepa.data.ptbxl_datamodule import PTBXLDataModule
    from ecgjepa.eval import build_module, choose_encoder

    dm: PTBXLDataModule = instantiate(cfg.dataset, _convert_="all")
    dm.setup()
    module = build_module(cfg, dm, choose_encoder(str(cfg.encoder)))
    for key, value in module.state_dict().items():
        assert torch.equal(value, best[key]), key  # the linear run's encoder *and* attentive head
    metrics = run(cfg)
    check_outputs(tmp_path / "lpft", 5)


def test_finetune_after_linear_refuses_a_pretrained_encoder(eval_cfg, tiny_encoder_run: Path) -> None:
    with pytest.raises(ValueError, match="starts from a linear run"):
        run(eval_cfg("protocol=finetune_after_linear", f"encoder={tiny_encoder_run}"))


def test_random_init_baseline_and_st_mem(eval_cfg, tmp_path: Path) -> None:
    # In the 500-record sample, fold 10 has no single-label HYP record: test on fold 8 instead.
    metrics = run(eval_cfg("encoder=vit_tiny", "task=st_mem", "dataset.test_fold=8"))
    targets = np.load(tmp_path / "predictions.npz")["test_targets"]
    assert (targets.sum(axis=1) == 1).all()  # single-label records only
    assert metrics["task"] == "st_mem"


@pytest.mark.parametrize("kind", ["minified", "pretrain"])
def test_original_checkpoints_are_accepted(eval_cfg, kind: str, original: OriginalFixture) -> None:
    path = getattr(original, kind)
    metrics = run(eval_cfg(f"encoder={path}", "protocol.steps=2", "protocol.checkpoint_interval=2"))
    assert 0 <= metrics["test_auroc"] <= 1


def test_a_class_without_positives_in_a_fold_is_named(eval_cfg) -> None:
    with pytest.raises(ValueError, match="class 'HYP' has no positive record in the test fold 10"):
        run(eval_cfg("encoder=vit_tiny", "task=st_mem", "dataset.absent_classes=error"))


def test_finished_run_is_skipped(eval_cfg, tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"test_auroc": 0.5}))
    assert run(eval_cfg("encoder=vit_tiny")) == {"test_auroc": 0.5}


def test_size_mismatch_is_refused(eval_cfg, tiny_encoder_run: Path, tmp_path: Path) -> None:
    bad = shutil.copytree(tiny_encoder_run / "encoder", tmp_path / "bad")
    description = json.loads((bad / "config.json").read_text())
    description["model"]["dim"] = 64
    (bad / "config.json").write_text(json.dumps(description))
    with pytest.raises(CheckpointError, match="size mismatch"):
        run(eval_cfg(f"encoder={bad}"))


def test_seven_crops_and_logit_averaging() -> None:
    x = torch.arange(2 * 12 * 5000, dtype=torch.float32).view(2, 12, 5000)
    crops, counts = crop_batch(x, None, 1250, 625)
    assert crops.shape == (14, 12, 1250) and counts == [7, 7]
    assert torch.equal(crops[7 + 3], x[1, :, 1875:3125])
    cfg = model_config(depth=1)
    module = ClassifierModule(cfg.to_dict(), PROTOCOL_LINEAR, 3, "multilabel", 500).eval()
    with torch.no_grad():
        per_crop = torch.stack([module.model(crops[k::7]) for k in range(7)], dim=1)
        torch.testing.assert_close(module(x), per_crop.mean(dim=1), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="longer than the record"):
        crop_batch(x[..., :1000], None, 1250, 625)


@pytest.mark.parametrize(("seconds", "expected"), [(2.5, 1), (8.0, 5), (10.0, 7), (20.0, 15)])
def test_crops_that_fit_a_record_of_any_length(seconds: float, expected: int) -> None:
    length = round(seconds * 500)
    starts = crop_starts(length, 1250, 625)
    assert len(starts) == expected and starts[0] == 0 and starts[-1] == length - 1250
    assert all(625 <= b - a < 1250 for a, b in zip(starts, starts[1:], strict=False))  # every sample covered


def test_a_padded_batch_averages_each_records_own_crops() -> None:
    """A batch of an 8 s and a 10 s record (padded to 10 s) gives the logits of each record alone."""
    torch.manual_seed(0)
    module = ClassifierModule(model_config(depth=1).to_dict(), PROTOCOL_LINEAR, 3, "multilabel", 500).eval()
    short, long = torch.randn(1, 12, 4000), torch.randn(1, 12, 5000)
    padded = torch.cat([torch.nn.functional.pad(short, (0, 1000)), long])
    with torch.no_grad():
        together = module(padded, torch.tensor([4000, 5000]))
        torch.testing.assert_close(together[0], module(short)[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(together[1], module(long)[0], rtol=1e-5, atol=1e-5)


def test_embed_reproduces_the_golden_tokens(tmp_path: Path, original: OriginalFixture) -> None:
    golden = np.load(original.golden_npz)
    for key, target in (("x", "target_tokens"), ("x_crop", "target_tokens_crop")):
        np.save(tmp_path / f"{key}.npy", golden[key])
        for ckpt in (original.minified, original.pretrain):
            out = tmp_path / f"{key}_{ckpt.stem}.npy"
            embed_main(
                [
                    f"encoder={ckpt}",
                    f"input={tmp_path / f'{key}.npy'}",
                    f"output={out}",
                    "tokens=true",
                    "normalize=false",
                ]
            )
            assert np.abs(np.load(out) - golden[target]).max() <= 1e-5


def test_embed_wfdb_folder_resamples_and_normalises(tmp_path: Path, tiny_encoder_run: Path) -> None:
    out = tmp_path / "z.npy"
    embed_main(
        [
            f"encoder={tiny_encoder_run}",
            f"input={DATA / 'ptbxl' / 'records100' / '01000'}",
            f"output={out}",
        ]
    )
    assert np.load(out).shape == (2, 32)


def test_embed_reads_a_manifest_and_lists_rejected_records(tmp_path: Path, tiny_encoder_run: Path) -> None:
    signal = read_wfdb(DATA / "ptbxl" / "records500" / "00000" / "00001_hr")
    np.save(tmp_path / "ecg1.npy", signal.signal.T)
    leads = ",".join(signal.leads)
    (tmp_path / "manifest.csv").write_text(
        f'file,sampling_rate,leads\necg1.npy,500,"{leads}"\nmissing.npy,500,"{leads}"\nshort.npy,500,"{leads}"\n'
    )
    np.save(tmp_path / "short.npy", signal.signal.T[:, :10])  # 20 ms: less than one 50 ms patch
    out = tmp_path / "z.npy"
    embed_main([f"encoder={tiny_encoder_run}", f"input={tmp_path / 'manifest.csv'}", f"output={out}"])
    assert np.load(out).shape == (1, 32)
    assert pd.read_csv(tmp_path / "z_records.csv")["record_id"].tolist() == ["ecg1.npy"]
    rejects = pd.read_csv(tmp_path / "z_rejects.csv").set_index("record_id")["reason"]
    assert sorted(rejects.index) == ["missing.npy", "short.npy"]
    assert "missing.npy" in rejects["missing.npy"] and "too short" in rejects["short.npy"]


# ecgjepa-eval as a Hydra multirun over two seeds, in a subprocess.
SEED_SWEEP = (sys.executable, "-m", "ecgjepa.eval", "-m", "seed=0,1")


@pytest.mark.slow
def test_seed_sweep_and_report(tmp_path: Path, sample_data_dir: Path) -> None:
    from ecgjepa.report import main as report_main

    sweep = tmp_path / "sweep"
    cmd = [
        *SEED_SWEEP,
        "encoder=vit_tiny",
        "dataset=ptbxl_sample",
        "trainer=cpu",
        "logger=none",
        "callbacks.lr_monitor=null",
        "task=superdiagnostic",
        "protocol.steps=3",
        "protocol.checkpoint_interval=3",
        "protocol.batch_size=32",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "ECGJEPA_DATA_DIR": str(sample_data_dir), "PYTHONPATH": str(REPO)}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    seeds = sorted(json.loads(p.read_text())["seed"] for p in sweep.glob("*/metrics.json"))
    assert seeds == [0, 1]
    report_main([str(sweep)])
    table = (sweep / "report.md").read_text()
    aucs = [json.loads(p.read_text())["test_auroc"] for p in sweep.glob("*/metrics.json")]
    from ecgjepa.report import paper_format

    assert paper_format(float(np.mean(aucs)), float(np.std(aucs))) in table
    assert (sweep / "report.png").is_file()
    # Re-running the sweep skips the finished seeds.
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0
    assert (rerun.stdout + rerun.stderr).count("skipping this finished run") == 2


def test_a_killed_evaluation_resumes(eval_cfg, tmp_path: Path) -> None:
    """A run stopped after its step-3 checkpoint (before writing outputs) continues to step 6."""
    run(eval_cfg("encoder=vit_tiny", "trainer.max_steps=3"))
    for name in ("metrics.json", "predictions.npz"):
        (tmp_path / name).unlink()  # what a kill before the end leaves: checkpoints only
    metrics = run(eval_cfg("encoder=vit_tiny", "ckpt_path=last"))
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert metrics["best_step"] in (3, 6)
    check_outputs(tmp_path, 5)


def test_fused_adamw_is_clipped_under_bf16_autocast() -> None:
    """Lightning's mixed-precision plugin refuses to clip for fused AdamW (the CUDA default); bf16 has no
    gradient scaler, so the module clips the true-scale gradients itself."""

    module = ClassifierModule(
        model_config(pred_depth=2).to_dict(), {**PROTOCOL_LINEAR, "fused": True}, 5, "multilabel", 500
    )
    optimizer = module.configure_optimizers()["optimizer"]
    module.trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for p in params:
        p.grad = torch.full_like(p, 3.0)
    with pytest.raises(RuntimeError, match="fused"):
        module.trainer.precision_plugin.clip_gradients(optimizer, 1.0)
    module.configure_gradient_clipping(optimizer, 1.0, "norm")
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    assert norm.item() == pytest.approx(1.0, rel=1e-5)
    module.configure_gradient_clipping(optimizer, 0.01, "value")
    assert max(p.grad.abs().max().item() for p in params) == pytest.approx(0.01)


def test_linear_probe_with_fused_adamw_in_bf16(eval_cfg, tmp_path: Path) -> None:
    metrics = run(eval_cfg("encoder=vit_tiny", "trainer.precision=bf16-mixed", "protocol.fused=true"))
    assert 0.0 <= metrics["test_auroc"] <= 1.0


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
        *SEED_SWEEP,
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

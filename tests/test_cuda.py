"""The GPU path (skipped without CUDA; CI has none): parity with the original in fp32, CPU == CUDA for a
training step, fused AdamW, ``trainer=gpu`` pre-training and evaluation end to end (compile on CUDA:
``test_compile.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ecgjepa.accel.precision import set_float32_precision
from ecgjepa.callbacks.target_momentum import ema_update
from ecgjepa.data.masks import BlockMaskSampler
from ecgjepa.formats.export import read_export
from ecgjepa.formats.layouts import load_encoder_state, load_into
from ecgjepa.models import VisionTransformer
from ecgjepa.modules.jepa import JEPAModule
from ecgjepa.utils.hydra import load_group_option
from tests.helpers import OriginalFixture, model_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


TINY_MODEL = model_config(pred_depth=2)


@pytest.fixture
def exact_fp32():
    """Full float32 matrix products and convolutions on the GPU (no TF32) for the comparisons, restored after."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    set_float32_precision("highest")
    yield
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cudnn.allow_tf32 = before[1]


def test_target_encoder_matches_the_original_on_cuda(exact_fp32, original: OriginalFixture) -> None:
    golden = dict(np.load(original.golden_npz))
    cfg, state, _ = load_encoder_state(original.minified)
    encoder = VisionTransformer(cfg).eval()
    load_into(encoder, state, "minified", strict=True)
    encoder.cuda()
    with torch.no_grad():
        for x, expected in (("x", "target_tokens"), ("x_crop", "target_tokens_crop")):
            out = encoder(torch.from_numpy(golden[x]).cuda()).cpu()
            assert (out - torch.from_numpy(golden[expected])).abs().max().item() <= 1e-4, expected


def test_a_training_step_on_cuda_equals_the_cpu(exact_fp32) -> None:
    """Loss, gradients, fused-AdamW update and EMA on the GPU match the CPU's (per-tensor loop) AdamW in fp32."""
    torch.manual_seed(0)
    cpu = JEPAModule(TINY_MODEL.to_dict(), load_group_option("optim", "paper"))
    gpu = JEPAModule(TINY_MODEL.to_dict(), load_group_option("optim", "paper"))
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    opts = {name: m.configure_optimizers()["optimizer"] for name, m in (("cpu", cpu), ("gpu", gpu))}
    assert opts["gpu"].defaults["fused"] and not opts["cpu"].defaults["fused"]
    keep, pred = BlockMaskSampler(25, 10, 0.15, 0.25).sample(4, 200, np.random.RandomState(0))
    x = torch.randn(4, 12, 5000)
    losses = {}
    for name, module, device in (("cpu", cpu, "cpu"), ("gpu", gpu, "cuda")):
        loss, _ = module.jepa_loss(x.to(device), keep.to(device), pred.to(device))
        loss.backward()
        losses[name] = loss.item()
        opts[name].step()
        ema_update(module.target_encoder, module.encoder, 0.99)
    assert losses["gpu"] == pytest.approx(losses["cpu"], rel=1e-5)
    gpu_state = gpu.state_dict()
    for key, value in cpu.state_dict().items():
        torch.testing.assert_close(gpu_state[key].cpu(), value, rtol=1e-4, atol=1e-5, msg=key)


def test_pretraining_and_linear_evaluation_with_the_gpu_trainer(train_cfg, eval_cfg, tmp_path: Path) -> None:
    from ecgjepa.eval import run as evaluate
    from ecgjepa.train import run as pretrain

    metrics = pretrain(train_cfg("trainer=gpu", "finite_check_interval=2", output_dir=tmp_path / "pretrain"))
    assert np.isfinite(metrics["train/loss"])
    _, weights, description = read_export(tmp_path / "pretrain" / "encoder")
    assert description["pretraining"]["step"] == 5 and all(v.device.type == "cpu" for v in weights.values())
    result = evaluate(eval_cfg(f"encoder={tmp_path / 'pretrain'}", "trainer=gpu", output_dir=tmp_path / "linear"))
    assert 0.0 <= result["test_auroc"] <= 1.0
    assert (tmp_path / "linear" / "checkpoints" / "best.ckpt").is_file()

"""ecgjepa.accel: the speed work on top of the reference model changes how fast, not what is computed.

Precision chosen by what the device can do (explicit values winning), bf16 CPU attention,
activation checkpointing and compile, each against the plain model, and the original's golden outputs with
the accelerated model.
"""

from __future__ import annotations

import collections
import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch._dynamo.utils import counters
from torch.utils._python_dispatch import TorchDispatchMode

from ecgjepa.accel import Accel, capability
from ecgjepa.accel.attention import CPUBfloat16Attention
from ecgjepa.accel.capability import device_type, native_bf16
from ecgjepa.accel.checkpointing import CheckpointedBlock
from ecgjepa.accel.precision import resolve_precision
from ecgjepa.data.masks import BlockMaskSampler
from ecgjepa.formats.files import load_file
from ecgjepa.formats.layouts import load_encoder_state, load_into, model_config_from_original
from ecgjepa.models import VisionTransformer
from ecgjepa.models.layers import Attention
from ecgjepa.modules.jepa import JEPAModule
from ecgjepa.utils.hydra import load_group_option
from ecgjepa.utils.paths import conf_dir
from tests.helpers import OriginalFixture, model_config

TINY = model_config(pred_depth=2)
OPTIM = load_group_option("optim", "paper")


def accel(**overrides: object) -> Accel:
    """``accel=auto`` as conf/accel/auto.yaml has it, on a CPU with native bf16, with ``overrides``."""
    auto = OmegaConf.to_container(OmegaConf.load(conf_dir() / "accel" / "auto.yaml"))
    return Accel.from_config({**auto, "cpu_bf16_attention": True, **overrides})


@pytest.fixture
def cpu_features(monkeypatch: pytest.MonkeyPatch):
    """Pretend the CPU has the given bf16 instructions (torch's own capability checks are replaced)."""

    def set_features(amx: bool, avx512_bf16: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        native_bf16.cache_clear()

    yield set_features
    native_bf16.cache_clear()


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(False, False, "32-true"), (True, False, "bf16-mixed"), (False, True, "bf16-mixed")],
)
def test_auto_takes_bf16_only_where_the_cpu_has_bf16_instructions(
    cpu_features, caplog: pytest.LogCaptureFixture, amx: bool, avx512_bf16: bool, expected: str
) -> None:
    cpu_features(amx, avx512_bf16)
    with caplog.at_level(logging.INFO):
        assert resolve_precision("auto", "cpu", "trainer.precision") == expected
    assert f"trainer.precision=auto -> {expected} on cpu" in caplog.text
    assert ("neither AMX nor AVX512-BF16" in caplog.text) == (expected == "32-true")


def test_explicit_values_win_over_the_capability(cpu_features) -> None:
    cpu_features(False, False)
    assert resolve_precision("bf16-mixed", "cpu", "trainer.precision") == "bf16-mixed"
    assert resolve_precision("16-mixed", "cuda", "trainer.precision") == "16-mixed"  # Lightning's own values pass
    cpu_features(True, True)
    assert resolve_precision("32-true", "cpu", "inference_precision") == "32-true"


def test_a_bad_inference_precision_is_named() -> None:
    with pytest.raises(ValueError, match=r"inference_precision: expected one of .* got 'fp8'"):
        resolve_precision("fp8", "cpu", "inference_precision")


def test_cuda_capability_without_a_gpu_is_no_bf16() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert native_bf16("cuda") == (False, "no CUDA device is available")


@pytest.mark.parametrize(
    ("accelerator", "expected"), [("cpu", "cpu"), ("gpu", "cuda"), ("cuda", "cuda"), (None, "cpu")]
)
def test_device_type_of_the_trainer_accelerator(
    monkeypatch: pytest.MonkeyPatch, accelerator: str | None, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_type(accelerator) == expected
    assert capability.device_type("auto") == "cpu"


def test_the_default_training_run_follows_the_cpu(train_cfg, cpu_features, tmp_path, caplog) -> None:
    """``trainer=default`` (precision auto) trains in float32 on a CPU without bf16 instructions."""
    from ecgjepa.train import run

    cpu_features(False, False)
    cfg = train_cfg("trainer=default", "trainer.accelerator=cpu", "trainer.max_steps=1", "optim.steps=1")
    with caplog.at_level(logging.INFO):
        run(cfg)
    assert cfg.trainer.precision == "32-true"
    assert "trainer.precision=auto -> 32-true on cpu" in caplog.text


# --- the contract: the same model with and without the speed work --------------------------------------------


def jepa_pair(**overrides: object) -> tuple[JEPAModule, JEPAModule]:
    torch.manual_seed(0)
    plain = JEPAModule(TINY.to_dict(), OPTIM)
    fast = accel(**overrides).apply(copy.deepcopy(plain))
    return plain, fast


def test_accel_none_leaves_the_reference_model_as_it_is() -> None:
    none = Accel.from_config(OmegaConf.to_container(OmegaConf.load(conf_dir() / "accel" / "none.yaml")))
    module = none.apply(JEPAModule(TINY.to_dict(), OPTIM))
    kinds = {type(m) for m in module.modules()}
    assert not kinds & {CPUBfloat16Attention, CheckpointedBlock}


def test_a_float32_training_step_is_bit_identical_with_and_without_accel() -> None:
    """bf16-attention layers (idle in float32) and selective checkpointing: the same loss, target tokens and
    gradients, bit for bit."""
    plain, fast = jepa_pair(activation_checkpointing="selective")
    assert isinstance(fast.encoder.blocks[0], CheckpointedBlock)
    assert isinstance(fast.encoder.blocks[0].attn, CPUBfloat16Attention)
    x = torch.randn(7, 12, 5000)
    masks = BlockMaskSampler(25, 10, 0.15, 0.25)
    keep, pred = masks.sample(7, 200, masks.rng_for(0))
    results = []
    for module in (plain, fast):
        loss, targets = module.jepa_loss(x, keep, pred)
        loss.backward()
        results.append((loss, targets, {n: p.grad for n, p in module.named_parameters() if p.requires_grad}))
    (loss_a, targets_a, grads_a), (loss_b, targets_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    assert torch.equal(targets_a, targets_b)
    for name, grad in grads_a.items():
        assert torch.equal(grads_b[name], grad), name


def test_the_accelerated_model_reproduces_the_original_golden_outputs(original: OriginalFixture) -> None:
    golden = dict(np.load(original.golden_npz))
    ckpt = load_file(original.pretrain)
    module = JEPAModule(model_config_from_original(ckpt["config"]).to_dict(), OPTIM)
    load_into(module, ckpt["model"], "pretrain", strict=True)
    accel().apply(module.eval())
    x, keep, pred = (torch.from_numpy(golden[k]) for k in ("x", "keep_idx", "pred_idx"))
    with torch.no_grad():
        targets = module.target_encoder(x)
        context = module.encoder(x, keep)
        predictions = module.predictor(context, keep, pred)
    assert (targets - torch.from_numpy(golden["target_tokens"])).abs().max() <= 1e-5
    assert (predictions - torch.from_numpy(golden["predictions"])).abs().max() <= 1e-5
    cfg, state, _ = load_encoder_state(original.minified)
    encoder = accel().apply(VisionTransformer(cfg).eval())
    load_into(encoder, state, "minified", strict=True)
    with torch.no_grad():
        assert (encoder(x) - torch.from_numpy(golden["target_tokens"])).abs().max() <= 1e-5


# --- CPU bf16 attention -----------------------------------------------------------------------------------------


def test_bf16_cpu_attention_matches_float32_without_float32_score_matrices() -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 50, 16), torch.randn(2, 3, 20, 16), torch.randn(2, 3, 20, 16)
    grad = torch.randn(2, 3, 50, 16)
    ref_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
    F.scaled_dot_product_attention(*ref_inputs).backward(grad)
    inputs = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    shapes: list[tuple[torch.dtype, tuple[int, ...]]] = []

    class RecordOutputs(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                shapes.append((out.dtype, tuple(out.shape)))
            return out

    layer = accel().apply(Attention(48, 3))
    assert isinstance(layer, CPUBfloat16Attention)
    with RecordOutputs(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer.attend(*inputs, 0.0)
        out.backward(grad.bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 50, 16)
    assert (out.float() - F.scaled_dot_product_attention(q, k, v)).abs().max() < 0.03
    for ref, got in zip(ref_inputs, inputs, strict=True):
        assert (got.grad.float() - ref.grad).abs().max() < 0.03 * ref.grad.abs().max()
    assert (torch.bfloat16, (6, 50, 20)) in shapes  # the scores exist, in bf16 only
    assert not [s for dtype, s in shapes if dtype == torch.float32 and s[-2:] == (50, 20)]


# --- activation checkpointing -----------------------------------------------------------------------------------


class CountOps(TorchDispatchMode):
    """Counts aten ops by name (overload packet) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def loss_and_grads(mode: str) -> tuple[dict[str, torch.Tensor], collections.Counter[str]]:
    torch.manual_seed(0)
    module = accel(activation_checkpointing=mode).apply(JEPAModule(TINY.to_dict(), OPTIM))
    x = torch.randn(3, 12, 5000)
    masks = BlockMaskSampler(25, 10, 0.15, 0.25)
    keep, pred = masks.sample(3, 200, masks.rng_for(0))
    with CountOps() as ops:
        loss, _ = module.jepa_loss(x, keep, pred)
        loss.backward()
    grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    return grads, ops.counts


def test_checkpointing_modes_give_identical_gradients_and_recompute_what_they_say() -> None:
    base, base_ops = loss_and_grads("none")
    for mode in ("selective", "full"):
        grads, ops = loss_and_grads(mode)
        assert grads.keys() == base.keys()
        for name, grad in grads.items():
            assert torch.equal(grad, base[name]), (mode, name)
        blocks = 2 * 2  # encoder + predictor blocks that run with grad
        # Both recompute the GELU and both LayerNorms of every trained block in the backward pass.
        assert ops["gelu"] == base_ops["gelu"] + blocks
        assert ops["native_layer_norm"] == base_ops["native_layer_norm"] + 2 * blocks
        if mode == "selective":
            assert ops["mm"] == base_ops["mm"]  # no matrix product is run twice
        else:
            # qkv, proj and fc1 again; fc2's output is not needed by the backward pass, so the recomputation
            # stops before it.
            assert ops["mm"] == base_ops["mm"] + 3 * blocks


def test_checkpointing_is_off_without_autograd_and_in_eval() -> None:
    module = accel(activation_checkpointing="selective").apply(JEPAModule(TINY.to_dict(), OPTIM))
    assert all(isinstance(b, CheckpointedBlock) for b in module.encoder.blocks)
    with CountOps() as ops, torch.no_grad():
        module.target_encoder(torch.randn(1, 12, 5000))
    assert ops.counts["native_layer_norm"] == 2 * 2 + 1
    module.eval()
    with CountOps() as ops, torch.no_grad():
        module.encoder(torch.randn(1, 12, 5000))
    assert ops.counts["native_layer_norm"] == 2 * 2 + 1  # no checkpoint machinery without grad


def test_bad_mode_and_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match=r"accel.activation_checkpointing: expected one of .* got 'yes'"):
        accel(activation_checkpointing="yes")
    with pytest.raises(ValueError, match=r"unknown accel config key\(s\) \['no_grad_chunk_mib'\]"):
        accel(no_grad_chunk_mib=8)


# --- compile ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "batch"),
    [
        ("cpu", 2),
        pytest.param("cuda", 8, marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")),
    ],
)
def test_compiled_pretraining_does_not_recompile_per_context_length(device: str, batch: int) -> None:
    torch.manual_seed(0)
    eager = JEPAModule(TINY.to_dict(), OPTIM).to(device)
    compiled = JEPAModule(TINY.to_dict(), OPTIM).to(device)
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    accel(compile=True, cpu_bf16_attention=False).apply(compiled)
    x = torch.randn(batch, 12, 5000, device=device)
    masks = BlockMaskSampler(25, 10, 0.15, 0.25)
    lengths = set()
    for i in range(5):
        keep, pred = (m.to(device) for m in masks.sample(batch, 200, masks.rng_for(i)))
        lengths.add(keep.shape[1])
        # bf16: the path inductor 2.13 failed on (CPU); on CUDA torch 2.11 failed on the dynamic shapes.
        with torch.autocast(device, dtype=torch.bfloat16):
            loss, _ = compiled.jepa_loss(x, keep, pred)
            expected, _ = eager.jepa_loss(x, keep, pred)
        loss.backward()
        assert torch.isfinite(loss)
        torch.testing.assert_close(loss, expected, rtol=2e-2, atol=0)
    assert len(lengths) >= 3
    assert counters["stats"]["unique_graphs"] == 3  # encoder, predictor, target encoder: compiled once each


def test_cpu_bf16_attention_auto_follows_the_cpu(cpu_features) -> None:
    cpu_features(False, False)
    assert accel(cpu_bf16_attention="auto").for_device("cpu").cpu_bf16_attention is False
    cpu_features(True, False)
    assert accel(cpu_bf16_attention="auto").for_device("cpu").cpu_bf16_attention is True
    with pytest.raises(ValueError, match="accel.cpu_bf16_attention: expected true, false or auto, got 'yes'"):
        accel(cpu_bf16_attention="yes")


def test_float32_precision_is_checked_and_covers_cudnn() -> None:
    from ecgjepa.accel.precision import set_float32_precision

    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        with pytest.raises(ValueError, match="float32_matmul_precision: expected one of .* got 'fast'"):
            set_float32_precision("fast")
        set_float32_precision("highest")
        assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
        set_float32_precision("high")
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]

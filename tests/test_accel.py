"""ecgjepa.accel: precision and kernels chosen by what the device can do, explicit values winning."""

from __future__ import annotations

import logging

import pytest
import torch

from ecgjepa.accel import capability
from ecgjepa.accel.capability import device_type, native_bf16
from ecgjepa.accel.precision import resolve_precision


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

"""Numerical parity with the original ECG-JEPA: its checkpoints and golden outputs (tiny and ViT-XS, CPU float32)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import wfdb

from ecgjepa.data.transforms import normalise
from ecgjepa.formats.files import load_file
from ecgjepa.formats.layouts import load_encoder_state, load_into, model_config_from_original
from ecgjepa.models import VisionTransformer
from ecgjepa.models.layers import gather_tokens
from ecgjepa.modules.jepa import JEPAModule
from ecgjepa.utils.hydra import load_group_option
from tests.helpers import DATA, OriginalFixture

TOL = 1e-5


@pytest.fixture(scope="module")
def golden(original: OriginalFixture) -> dict[str, np.ndarray]:
    return dict(np.load(original.golden_npz))


def tensor(golden: dict, key: str) -> torch.Tensor:
    return torch.from_numpy(golden[key])


def jepa_from_original(path) -> JEPAModule:
    ckpt = load_file(path)
    cfg = model_config_from_original(ckpt["config"])
    module = JEPAModule(model=cfg.to_dict(), optim=load_group_option("optim", "paper"))
    load_into(module, ckpt["model"], str(path), strict=True)
    return module.eval()


@pytest.fixture(scope="module")
def jepa(original: OriginalFixture) -> JEPAModule:
    return jepa_from_original(original.pretrain)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def outputs(module: JEPAModule, golden: dict) -> dict[str, torch.Tensor]:
    x, crop = tensor(golden, "x"), tensor(golden, "x_crop")
    keep, pred = tensor(golden, "keep_idx"), tensor(golden, "pred_idx")
    with torch.no_grad():
        context = module.encoder(x, keep)
        return {
            "target_tokens": module.target_encoder(x),
            "target_tokens_crop": module.target_encoder(crop),
            "target_registers": module.target_encoder(x, keep_registers=True)[:, :1],
            "target_registers_crop": module.target_encoder(crop, keep_registers=True)[:, :1],
            "context_tokens": context,
            "predictions": module.predictor(context, keep, pred),
        }


def test_import_is_strict_and_bit_identical(jepa: JEPAModule, original: OriginalFixture) -> None:
    ckpt = load_file(original.pretrain)
    ours = jepa.state_dict()
    assert list(ours) == list(ckpt["model"])  # same names, same order, nothing extra
    for key, value in ckpt["model"].items():
        assert torch.equal(ours[key], value), key


def test_every_golden_output_from_the_pretrain_checkpoint(jepa: JEPAModule, golden: dict) -> None:
    out = outputs(jepa, golden)
    for key, value in out.items():
        assert max_abs(value, tensor(golden, key)) <= TOL, key
    loss = (out["predictions"] - gather_tokens(out["target_tokens"], tensor(golden, "pred_idx"))).abs().mean()
    assert abs(loss.item() - float(golden["loss"])) <= 1e-6


def test_target_encoder_from_the_minified_checkpoint(golden: dict, original: OriginalFixture) -> None:
    cfg, state, extras = load_encoder_state(original.minified)
    assert extras["layout"] == "original-minified" and len(state) == original.encoder_tensors
    encoder = VisionTransformer(cfg).eval()
    load_into(encoder, state, "minified", strict=True)
    with torch.no_grad():
        assert max_abs(encoder(tensor(golden, "x")), tensor(golden, "target_tokens")) <= TOL
        assert max_abs(encoder(tensor(golden, "x_crop")), tensor(golden, "target_tokens_crop")) <= TOL


@pytest.mark.parametrize("breakage", ["layernorm_reset", "registers_zeroed"])
def test_a_broken_import_misses_the_golden_outputs(breakage: str, golden: dict, original: OriginalFixture) -> None:
    module = jepa_from_original(original.pretrain)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if breakage == "layernorm_reset" and "norm" in name:
                p.fill_(1.0)
            if breakage == "registers_zeroed" and name.endswith("registers"):
                p.zero_()
    out = outputs(module, golden)
    assert max_abs(out["target_registers"], tensor(golden, "target_registers")) >= 10 * TOL
    assert max_abs(out["target_tokens"], tensor(golden, "target_tokens")) >= 10 * TOL


def test_preprocessing_of_the_real_records_is_bit_exact(golden: dict, original: OriginalFixture) -> None:
    """WFDB read -> float16 -> z-score in float16 arithmetic -> clip: exactly the golden x."""
    pre = json.loads(original.golden_json.read_text())["preprocessing"]
    mean, std = np.asarray(pre["mean"], np.float16), np.asarray(pre["std"], np.float16)
    for row, ecg_id in enumerate(golden["ecg_id"]):
        signal, _ = wfdb.rdsamp(str(DATA / "ptbxl" / "records500" / "00000" / f"{ecg_id:05d}_hr"))
        x = normalise(signal.astype(np.float16), mean, std).T.astype(np.float32)
        np.testing.assert_array_equal(x, golden["x"][row])

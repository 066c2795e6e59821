"""ECG ViT and predictor: sizes, shapes, register handling, masking by index, gradients, bf16 attention."""

from __future__ import annotations

import pytest
import torch

from ecgjepa.models import ModelConfig, Predictor, VisionTransformer
from ecgjepa.models.pos_embed import sincos_pos_embed
from tests.helpers import model_config

SIZES = {
    "vit_xs": (
        dict(dim=192, depth=8, num_heads=4, pred_dim=96, pred_depth=8, pred_num_heads=4),
        3_600_000,
        923_328,
    ),
    "vit_s": (
        dict(dim=384, depth=8, num_heads=6, pred_dim=192, pred_depth=8, pred_num_heads=6),
        14_277_888,
        3_689_856,
    ),
    "vit_b": (
        dict(dim=768, depth=12, num_heads=12, pred_dim=384, pred_depth=12, pred_num_heads=12),
        85_185_024,
        21_833_472,
    ),
}
TINY = model_config(pred_depth=2)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", list(SIZES))
def test_parameter_counts_match_the_paper(name: str) -> None:
    sizes, encoder_params, predictor_params = SIZES[name]
    cfg = model_config(name)
    assert {key: getattr(cfg, key) for key in sizes} == sizes
    assert count(VisionTransformer(cfg)) == encoder_params
    assert count(Predictor(cfg)) == predictor_params


def test_no_biases_and_layernorm_eps() -> None:
    encoder = VisionTransformer(TINY)
    assert not [n for n, _ in encoder.named_parameters() if n.endswith("bias")]
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)
    assert "pos_embed" not in encoder.state_dict()  # fixed table, not persisted


def test_positional_table_is_interleaved_sin_cos() -> None:
    table = sincos_pos_embed(200, 8)
    p, i = 7, 1
    omega = 10000 ** (-2 * i / 8)
    assert table[p, 2 * i].item() == pytest.approx(torch.sin(torch.tensor(p * omega)).item(), abs=1e-6)
    assert table[p, 2 * i + 1].item() == pytest.approx(torch.cos(torch.tensor(p * omega)).item(), abs=1e-6)


def test_encoder_shapes_registers_and_masking() -> None:
    encoder = VisionTransformer(TINY).eval()
    x = torch.randn(3, 12, 5000)
    assert encoder(x).shape == (3, 200, 32)
    assert encoder(x, keep_registers=True).shape == (3, 201, 32)
    assert encoder(x[..., :1250]).shape == (3, 50, 32)
    keep = torch.tensor([[0, 5, 9], [1, 2, 3], [100, 150, 199]])
    assert encoder(x, keep).shape == (3, 3, 32)


def test_masked_tokens_use_the_positions_of_their_indices() -> None:
    """Encoding only the first K patches by index equals encoding the K-patch crop."""
    encoder = VisionTransformer(TINY).eval()
    x = torch.randn(2, 12, 5000)
    keep = torch.arange(50).expand(2, -1)
    with torch.no_grad():
        assert torch.allclose(encoder(x, keep), encoder(x[..., :1250]), atol=1e-5)


def test_predictor_shapes_and_gradients_reach_every_parameter() -> None:
    encoder, predictor = VisionTransformer(TINY), Predictor(TINY)
    x = torch.randn(2, 12, 5000)
    perm = torch.stack([torch.randperm(200) for _ in range(2)])
    keep, pred = perm[:, :40].sort(1).values, perm[:, 40:].sort(1).values
    out = predictor(encoder(x, keep), keep, pred)
    assert out.shape == (2, 160, 32)
    assert torch.isfinite(out).all()
    out.abs().mean().backward()
    for name, p in [*encoder.named_parameters(), *predictor.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="multiple of patch_size"):
        VisionTransformer(TINY)(torch.randn(1, 12, 1001))
    with pytest.raises(ValueError, match="at most 200"):
        VisionTransformer(TINY)(torch.randn(1, 12, 5025))
    with pytest.raises(ValueError, match=r"unknown model config key\(s\) \['dimm'\]"):
        ModelConfig.from_dict({"dimm": 3})


def test_xavier_init_is_an_option() -> None:
    cfg = model_config(pred_depth=2, init="xavier_uniform")
    w = VisionTransformer(cfg).blocks[0].mlp.fc1.weight
    bound = (6 / (32 + 128)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound

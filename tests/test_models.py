"""ECG ViT and predictor: sizes, shapes, register handling, masking by index, gradients, bf16 attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from ecgjepa.models import ModelConfig, Predictor, VisionTransformer
from ecgjepa.models.layers import attention
from ecgjepa.models.pos_embed import sincos_pos_embed

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
TINY = ModelConfig(dim=32, depth=2, num_heads=2, pred_dim=16, pred_depth=2, pred_num_heads=2)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", list(SIZES))
def test_parameter_counts_match_the_paper(name: str) -> None:
    sizes, encoder_params, predictor_params = SIZES[name]
    cfg = ModelConfig(**sizes)
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
    cfg = ModelConfig(dim=32, depth=2, num_heads=2, pred_dim=16, pred_depth=2, pred_num_heads=2, init="xavier_uniform")
    w = VisionTransformer(cfg).blocks[0].mlp.fc1.weight
    bound = (6 / (32 + 128)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound


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

    with RecordOutputs(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(*inputs)
        out.backward(grad.bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 50, 16)
    assert (out.float() - F.scaled_dot_product_attention(q, k, v)).abs().max() < 0.03
    for ref, got in zip(ref_inputs, inputs, strict=True):
        assert (got.grad.float() - ref.grad).abs().max() < 0.03 * ref.grad.abs().max()
    assert (torch.bfloat16, (6, 50, 20)) in shapes  # the scores exist, in bf16 only
    assert not [s for dtype, s in shapes if dtype == torch.float32 and s[-2:] == (50, 20)]


def _batch_sizes_seen(encoder: VisionTransformer, *args: object) -> tuple[torch.Tensor, list[int]]:
    sizes: list[int] = []
    hook = encoder.patch_embed.register_forward_pre_hook(lambda m, inp: sizes.append(inp[0].shape[0]))
    try:
        return encoder(*args), sizes
    finally:
        hook.remove()


def _chunked_copy(whole: VisionTransformer, mib: float) -> VisionTransformer:
    chunked = VisionTransformer(TINY, no_grad_chunk_mib=mib).eval()
    chunked.load_state_dict(whole.state_dict())
    return chunked


def test_no_grad_forwards_run_in_chunks_with_the_same_results() -> None:
    torch.manual_seed(0)
    whole = VisionTransformer(TINY, no_grad_chunk_mib=0).eval()
    # One sequence of 201 tokens has a 201 x 128 x 4-byte MLP activation (0.098 MiB): 0.3 MiB holds 3, so a
    # batch of 7 runs as 3 equal chunks of at most 3.
    chunked = _chunked_copy(whole, 0.3)
    x = torch.randn(7, 12, 5000)
    with torch.no_grad():
        expected, sizes = _batch_sizes_seen(whole, x)
        assert sizes == [7]
        out, sizes = _batch_sizes_seen(chunked, x)
        assert sizes == [3, 2, 2]
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
        out, sizes = _batch_sizes_seen(chunked, x, None, True)  # register outputs kept
        assert sizes == [3, 2, 2]
        torch.testing.assert_close(out, whole(x, keep_registers=True), rtol=0, atol=1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # 2-byte activations: 6 sequences per chunk
            _, sizes = _batch_sizes_seen(chunked, x)
        assert sizes == [4, 3]
        assert _batch_sizes_seen(chunked, x[:1])[1] == [1]
        assert chunked(x[:0]).shape == (0, 200, 32)
    with torch.inference_mode():
        assert _batch_sizes_seen(chunked, x)[1] == [3, 2, 2]
    # With autograd the whole batch runs at once (the graph keeps every activation anyway).
    assert _batch_sizes_seen(chunked, x)[1] == [7]


def test_chunks_follow_the_context_length_and_never_go_below_one_sequence() -> None:
    torch.manual_seed(0)
    whole = VisionTransformer(TINY, no_grad_chunk_mib=0).eval()
    chunked = _chunked_copy(whole, 0.05)  # less than one full sequence (0.098 MiB)
    x = torch.randn(7, 12, 5000)
    keep = torch.stack([torch.randperm(200)[:40].sort().values for _ in range(7)])
    with torch.no_grad():
        assert _batch_sizes_seen(chunked, x)[1] == [1] * 7
        out, sizes = _batch_sizes_seen(chunked, x, keep)  # 41 tokens: 0.02 MiB, 2 per chunk
        assert sizes == [2, 2, 2, 1]
        torch.testing.assert_close(out, whole(x, keep), rtol=0, atol=1e-6)


@pytest.mark.parametrize("value", [-1, "8", True, float("inf"), float("nan")])
def test_bad_chunk_size_is_named(value: object) -> None:
    with pytest.raises(ValueError, match="no_grad_chunk_mib: expected a finite number of MiB >= 0"):
        VisionTransformer(TINY, no_grad_chunk_mib=value)


def test_chunk_budget_reaches_every_encoder() -> None:
    from ecgjepa.modules.classifier import ClassifierModule
    from ecgjepa.modules.jepa import JEPAModule

    jepa = JEPAModule(TINY.to_dict(), {}, no_grad_chunk_mib=2)
    assert jepa.encoder.no_grad_chunk_mib == jepa.target_encoder.no_grad_chunk_mib == 2
    protocol = {"name": "linear", "frozen": True, "attn_pooling": True}
    classifier = ClassifierModule(TINY.to_dict(), protocol, num_classes=3, no_grad_chunk_mib=2)
    assert classifier.model.encoder.no_grad_chunk_mib == 2

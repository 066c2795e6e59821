"""Activation checkpointing: identical gradients, what each mode recomputes, bad values named."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ecgjepa.data.masks import BlockMaskCollator
from ecgjepa.models import ModelConfig
from ecgjepa.modules.jepa import JEPAModule

TINY = ModelConfig(dim=32, depth=2, num_heads=2, pred_dim=16, pred_depth=2, pred_num_heads=2).to_dict()


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
    module = JEPAModule(TINY, {}, activation_checkpointing=mode)
    x = torch.randn(3, 12, 5000)
    collator = BlockMaskCollator(25, 10, 0.15, 0.25)
    keep, pred = collator.sample(3, 200, collator.rng_for(0))
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
        products, base_products = (c["mm"] + c["_linear_pointwise"] for c in (ops, base_ops))  # aten / oneDNN
        if mode == "selective":
            assert products == base_products  # no matrix product is run twice
        else:
            # qkv, proj and fc1 again; fc2's output is not needed by the backward pass, so the recomputation
            # stops before an aten product, but after a oneDNN one (it saves its inputs after computing).
            assert products == base_products + (4 if base_ops["_linear_pointwise"] else 3) * blocks


def test_checkpointing_is_off_for_the_target_encoder_and_in_eval() -> None:
    module = JEPAModule(TINY, {}, activation_checkpointing="selective")
    assert {b.activation_checkpointing for b in module.encoder.blocks} == {"selective"}
    assert {b.activation_checkpointing for b in module.target_encoder.blocks} == {"none"}
    module.eval()
    with CountOps() as ops, torch.no_grad():
        module.encoder(torch.randn(1, 12, 5000))
    assert ops.counts["native_layer_norm"] == 2 * 2 + 1  # no checkpoint machinery without grad


def test_bad_mode_is_named() -> None:
    with pytest.raises(ValueError, match=r"activation_checkpointing: expected one of none, selective, full, got 'yes'"):
        JEPAModule(TINY, {}, activation_checkpointing="yes")

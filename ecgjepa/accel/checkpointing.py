"""Activation checkpointing of transformer blocks: recompute in the backward pass instead of storing.

``selective`` keeps the outputs of the matrix products and attention kernels that the backward pass needs
and recomputes only the cheap elementwise work (LayerNorm, GELU, residual adds, dtype casts), so the backward
pass redoes no matrix product. ``full`` stores only each block's input and recomputes the whole block (about a
third more compute; for models or batches that do not fit otherwise). Results are bit-identical to ``none``:
the recomputation runs the same kernels on the same inputs, with the RNG state restored.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from ecgjepa.models.layers import Block

MODES = ("none", "selective", "full")

_aten = torch.ops.aten
# Ops whose outputs `selective` keeps: every matrix product and attention kernel a block can run on CPU or GPU.
_KEEP_OUTPUTS = {
    _aten.mm.default,
    _aten.addmm.default,
    _aten.bmm.default,
    _aten.baddbmm.default,
    _aten._scaled_dot_product_flash_attention_for_cpu.default,
    _aten._scaled_dot_product_flash_attention.default,
    _aten._scaled_dot_product_efficient_attention.default,
    _aten._scaled_dot_product_cudnn_attention.default,
}


def _is_narrowing_product(op: object, args: tuple) -> bool:
    """A 2-D product whose weight maps more features to fewer: in a block, only the MLP's ``fc2``.

    Its output feeds nothing but the residual add, which the backward pass does not need, so it is neither
    kept nor (the recomputation stops once every needed tensor exists) recomputed.
    """
    weight = args[1] if op is _aten.mm.default else args[2] if op is _aten.addmm.default else None
    return isinstance(weight, torch.Tensor) and weight.dim() == 2 and weight.shape[0] > weight.shape[1]


def _keep_matmul_outputs(ctx: object, op: object, *args: object, **kwargs: object) -> CheckpointPolicy:
    if op in _KEEP_OUTPUTS and not _is_narrowing_product(op, args):
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


class CheckpointedBlock(Block):
    """:class:`Block` that recomputes its activations in the backward pass (``mode`` 'selective' or 'full')
    when it trains with autograd."""

    mode: str = "selective"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return super().forward(x)
        block_forward = super().forward
        if self.mode == "selective":
            context_fn = functools.partial(create_selective_checkpoint_contexts, _keep_matmul_outputs)
            return checkpoint(block_forward, x, use_reentrant=False, context_fn=context_fn)
        return checkpoint(block_forward, x, use_reentrant=False)

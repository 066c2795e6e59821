"""Masked-reconstruction pre-training: ST-MEM, MTAE and MLAE (Na et al., ICLR 2024), one module, three configs.

A random share of the tokens is hidden; the encoder sees the others, a light decoder
(:class:`~ecgjepa.models.decoder.ReconstructionDecoder`) reconstructs the samples of every token, and the loss is
the mean squared error over the hidden tokens only, each token's target standardised by its own mean and
variance (MAE's per-patch normalisation). The methods differ in their tokenisation (``model.tokenizer``) and in
the structure of the mask (:func:`ecgjepa.data.token_masks.token_masks`); random lead masking (RLM) can be switched
on for any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from ecgjepa.data.token_masks import random_lead_mask, token_masks
from ecgjepa.models.backbones import build_encoder
from ecgjepa.models.decoder import ReconstructionDecoder
from ecgjepa.modules.pretrain import PretrainModule, collapse_std


def masked_mse(
    predictions: torch.Tensor, targets: torch.Tensor, mask_idx: torch.Tensor, normalise_targets: bool
) -> torch.Tensor:
    """Mean squared error of (B, N, V) predictions over the hidden tokens ``mask_idx`` (B, M); with
    ``normalise_targets`` each token's target is standardised by its own mean and (biased) variance + 1e-6."""
    targets = targets.float()
    if normalise_targets:
        mean, var = targets.mean(dim=-1, keepdim=True), targets.var(dim=-1, unbiased=False, keepdim=True)
        targets = (targets - mean) / (var + 1e-6).sqrt()
    errors = (predictions.float() - targets).pow(2).mean(dim=-1)  # (B, N)
    return torch.gather(errors, 1, mask_idx).mean()


class Reconstruction(NamedTuple):
    loss: torch.Tensor
    encoded: torch.Tensor  # (B, R + K, D): the encoder's outputs (registers, visible tokens)
    predictions: torch.Tensor  # (B, N, V): the decoder's samples of every token
    keep_idx: torch.Tensor  # (B, K)
    mask_idx: torch.Tensor  # (B, M)


class MaskedReconstructionModule(PretrainModule):
    """Encoder + light decoder trained to reconstruct hidden tokens.

    Args:
        name: the method's name (``st_mem``, ``mtae``, ``mlae``), recorded with checkpoints and exports.
        mask_ratio: share of the tokens hidden (of each lead's patches, or of the leads).
        mask_structure: ``within_groups`` (the same share of every lead's tokens, or of the time patches) or
            ``whole_groups`` (whole leads).
        decoder: ``{dim, depth, num_heads, per_lead}`` (``per_lead``: decode each lead as its own sequence).
        normalise_targets: standardise each token's target by its own mean and variance.
        random_lead_masking: probability that a lead is zeroed in the encoder's input (0 = off); the targets stay
            the recorded leads.
        seed: base seed of the masks (a step's masks are a function of seed, rank, step and micro-batch).
        model, optim, finite_check_interval, data, accumulate_grad_batches, recipe: see :class:`PretrainModule`.
    """

    def __init__(
        self,
        name: str,
        mask_ratio: float,
        mask_structure: str,
        decoder: Mapping[str, Any],
        normalise_targets: bool,
        random_lead_masking: float,
        seed: int,
        model: Mapping[str, Any],
        optim: Mapping[str, Any],
        finite_check_interval: int = 1,
        data: Mapping[str, Any] | None = None,
        accumulate_grad_batches: int = 1,
        recipe: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model, optim, finite_check_interval, data, accumulate_grad_batches, recipe)
        self.method = name
        self.mask_ratio, self.mask_structure = mask_ratio, mask_structure
        self.normalise_targets, self.random_lead_masking, self.seed = normalise_targets, random_lead_masking, seed
        c = self.require_vit()
        self.encoder = build_encoder(c)
        groups, max_per_group = self.encoder.token_layout(c.channel_size)
        values = self.encoder.patchify(torch.zeros(1, len(c.channels), c.channel_size)).shape[-1]
        unknown = sorted(set(decoder) - {"dim", "depth", "num_heads", "per_lead"})
        if unknown:
            raise ValueError(f"method.decoder: unknown key(s) {unknown}; expected dim, depth, num_heads, per_lead")
        self.decoder = ReconstructionDecoder(
            c,
            decoder["dim"],
            decoder["depth"],
            decoder["num_heads"],
            groups,
            max_per_group,
            values,
            decoder["per_lead"],
        )
        token_masks(1, groups, max_per_group, mask_ratio, mask_structure, torch.Generator())  # checks the settings
        random_lead_mask(1, len(c.channels), random_lead_masking, torch.Generator())

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator) -> Reconstruction:
        """Mask, encode, decode and score signals x (B, C, T) with masks drawn from ``generator``."""
        b, leads, length = x.shape
        groups, per_group = self.encoder.token_layout(length)
        keep_idx, mask_idx = token_masks(b, groups, per_group, self.mask_ratio, self.mask_structure, generator)
        keep_idx, mask_idx = keep_idx.to(x.device), mask_idx.to(x.device)
        inputs = x
        if self.random_lead_masking:
            inputs = x * random_lead_mask(b, leads, self.random_lead_masking, generator).to(x)[..., None]
        encoded = self.encoder(inputs, keep_idx, keep_registers=True)
        predictions = self.decoder(encoded, keep_idx, per_group, self.encoder.num_registers)
        loss = masked_mse(predictions, self.encoder.patchify(x), mask_idx, self.normalise_targets)
        return Reconstruction(loss, encoded, predictions, keep_idx, mask_idx)

    def method_loss(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        x = batch[0]
        out = self.reconstruct(x, self.step_generator(self.seed, batch_idx))
        kept, hidden = out.keep_idx.shape[1], out.mask_idx.shape[1]
        return out.loss, {"encoder_std": collapse_std(out.encoded.mean(dim=1)), "keep_ratio": kept / (kept + hidden)}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.decoder]

"""ECG Vision Transformer (ECG-JEPA ``models/vision_transformer.py``).

One token = ``patch_size`` samples of *all* leads (a strided Conv1d), fixed interleaved sin-cos
positions added before masking, learned register token(s) prepended after masking, pre-norm blocks,
final LayerNorm. No biases and LayerNorm eps 1e-6 with the paper's configs.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgjepa.models.config import ModelConfig
from ecgjepa.models.layers import gather_tokens, init_weights, transformer_blocks
from ecgjepa.models.pos_embed import sincos_pos_embed


class PatchEmbed(nn.Module):
    """(B, C, T) -> (B, T / patch_size, D) with a kernel = stride = patch_size convolution."""

    def __init__(self, in_channels: int, dim: int, patch_size: int, bias: bool = False) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv1d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.patch_size:
            raise ValueError(f"input length {x.shape[-1]} is not a multiple of patch_size={self.patch_size}")
        return self.proj(x).transpose(1, 2)


class VisionTransformer(nn.Module):
    """The ECG-JEPA encoder; ``config.channels`` and ``config.channel_size`` fix the input leads and the
    longest input."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.dim = c.dim
        self.num_registers = c.num_registers
        self.patch_embed = PatchEmbed(len(c.channels), c.dim, c.patch_size, c.bias)
        self.register_buffer("pos_embed", sincos_pos_embed(c.num_patches, c.dim)[None], persistent=False)
        self.registers = nn.Parameter(torch.zeros(1, c.num_registers, c.dim)) if c.num_registers else None
        self.blocks = transformer_blocks(c, c.dim, c.num_heads, c.depth, c.layer_scale_eps)
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps, bias=c.bias)
        init_weights(self, c.depth, c.init)
        if self.registers is not None:
            nn.init.trunc_normal_(self.registers, std=0.02)

    def token_layout(self, length: int) -> tuple[int, int]:
        """(groups, tokens per group) of an input of ``length`` samples: one group, as a token spans all leads."""
        return 1, length // self.patch_embed.patch_size

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, n, C * patch_size): the samples of every token (all leads of one patch)."""
        b, c, t = x.shape
        p = self.patch_embed.patch_size
        return x.reshape(b, c, t // p, p).transpose(1, 2).reshape(b, t // p, c * p)

    def forward(
        self, x: torch.Tensor, keep_idx: torch.Tensor | None = None, keep_registers: bool = False
    ) -> torch.Tensor:
        """Encode an ECG.

        Args:
            x: (B, C, T) with T a multiple of ``patch_size`` and at most ``channel_size``.
            keep_idx: optional (B, K) int64 patch indices to keep (context), sorted.
            keep_registers: keep the register outputs at the front of the sequence.

        Returns:
            (B, N or K, D), or (B, R + N or K, D) with ``keep_registers``.
        """
        tokens = self.patch_embed(x)
        n = tokens.shape[1]
        if n > self.pos_embed.shape[1]:
            raise ValueError(
                f"input has {n} patches but the encoder was built for at most {self.pos_embed.shape[1]} "
                f"(channel_size={self.config.channel_size})"
            )
        tokens = tokens + self.pos_embed[:, :n]
        if keep_idx is not None:
            tokens = gather_tokens(tokens, keep_idx)
        if self.registers is not None:
            tokens = torch.cat([self.registers.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        if keep_registers or not self.num_registers:
            return tokens
        return tokens[:, self.num_registers :]

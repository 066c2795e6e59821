"""ECG ViT with per-lead tokens: ST-MEM's tokenisation (Na et al., ICLR 2024) and MLAE's.

``tokenizer=lead_patches``: every lead is cut into ``patch_size``-sample patches, each embedded as ST-MEM does
(LayerNorm over the patch's samples, a linear layer, LayerNorm over the width), shared across leads. A token gets
the fixed sin-cos position of its patch in time (shared by all leads) and a learned embedding of its lead. Each
lead is framed by two separator tokens (one learned vector plus the lead's embedding, no time position) that tell
the attention where a lead begins and ends.

``tokenizer=leads``: one token per whole lead (``patch_size`` = ``channel_size``) plus its lead embedding; no time
positions and no separators.

Tokens are ordered lead by lead (token ``c * n + i`` = lead ``c``, patch ``i``); the separators are not among the
tokens a mask chooses from and are never returned. Pooled features (``encoder(x).mean(1)``) average the patch tokens
of all leads, ST-MEM's pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgjepa.models.config import ModelConfig
from ecgjepa.models.layers import gather_tokens, init_weights, transformer_blocks
from ecgjepa.models.pos_embed import sincos_pos_embed


class LeadViT(nn.Module):
    """Encoder over per-lead tokens; same interface as :class:`~ecgjepa.models.vit.VisionTransformer`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.tokenizer not in ("lead_patches", "leads"):
            raise ValueError(f"LeadViT takes tokenizer lead_patches or leads, got {config.tokenizer!r}")
        if config.num_registers:
            raise ValueError(f"model.tokenizer={config.tokenizer} has no register tokens: set model.num_registers=0")
        c = config
        self.config = c
        self.dim = c.dim
        self.num_registers = 0
        self.num_leads = len(c.channels)
        self.separators = c.tokenizer == "lead_patches"
        self.patch_size = c.patch_size
        self.patch_norm = nn.LayerNorm(c.patch_size, eps=c.norm_eps, bias=c.bias)
        self.patch_embed = nn.Linear(c.patch_size, c.dim, bias=c.bias)
        self.embed_norm = nn.LayerNorm(c.dim, eps=c.norm_eps, bias=c.bias)
        self.lead_embed = nn.Parameter(torch.zeros(self.num_leads, c.dim))
        if self.separators:
            self.register_buffer("pos_embed", sincos_pos_embed(c.num_patches, c.dim), persistent=False)
            self.sep_token = nn.Parameter(torch.zeros(c.dim))
        self.blocks = transformer_blocks(c, c.dim, c.num_heads, c.depth, c.layer_scale_eps)
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps, bias=c.bias)
        init_weights(self, c.depth, c.init)
        nn.init.trunc_normal_(self.lead_embed, std=0.02)
        if self.separators:
            nn.init.trunc_normal_(self.sep_token, std=0.02)

    def token_layout(self, length: int) -> tuple[int, int]:
        """(groups, tokens per group) of an input of ``length`` samples: (leads, patches per lead)."""
        return self.num_leads, self.patches_in(length)

    def patches_in(self, length: int) -> int:
        if self.config.fixed_length and length != self.config.channel_size:
            raise ValueError(
                f"input has {length} samples; model.tokenizer=leads takes exactly {self.config.channel_size}"
            )
        if length % self.patch_size:
            raise ValueError(f"input length {length} is not a multiple of patch_size={self.patch_size}")
        n = length // self.patch_size
        if n > self.config.num_patches:
            raise ValueError(
                f"input has {n} patches per lead but the encoder was built for at most {self.config.num_patches} "
                f"(channel_size={self.config.channel_size})"
            )
        return n

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C * n, patch_size): the samples of every token, lead by lead."""
        b, c, t = x.shape
        return x.reshape(b, c * self.patches_in(t), self.patch_size)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C * n, D): embedded patches with their time position and lead embedding."""
        b, c, t = x.shape
        if c != self.num_leads:
            raise ValueError(f"input has {c} leads; the encoder was built for {self.num_leads}")
        n = self.patches_in(t)
        patches = self.patch_norm(x.reshape(b, c, n, self.patch_size))
        tokens = self.embed_norm(self.patch_embed(patches)) + self.lead_embed[:, None]
        if self.separators:
            tokens = tokens + self.pos_embed[:n]
        return tokens.reshape(b, c * n, self.dim)

    def separator_tokens(self) -> torch.Tensor:
        """(2 * C, D): each lead's opening and closing separator (the same vector plus the lead's embedding)."""
        return (self.sep_token + self.lead_embed).repeat_interleave(2, dim=0)

    def forward(
        self, x: torch.Tensor, keep_idx: torch.Tensor | None = None, keep_registers: bool = False
    ) -> torch.Tensor:
        """Encode an ECG.

        Args:
            x: (B, C, T) with T a multiple of ``patch_size`` and at most ``channel_size``.
            keep_idx: optional (B, K) int64 token indices to keep (sorted; see the module docstring's order).
            keep_registers: accepted for the common interface; this encoder has no registers.

        Returns:
            (B, C * n or K, D), the patch tokens only.
        """
        tokens = self.tokens(x)
        if keep_idx is not None:
            tokens = gather_tokens(tokens, keep_idx)
        kept = tokens.shape[1]
        if self.separators:
            seps = self.separator_tokens().to(tokens.dtype)
            tokens = torch.cat([seps.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, -kept:]

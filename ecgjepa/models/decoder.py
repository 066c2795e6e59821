"""The light decoder of the masked-reconstruction methods (ST-MEM, MTAE, MLAE), after MAE (He et al., 2022).

The encoder's outputs of the visible tokens are embedded to the decoder width and scattered into a sequence of one
learned mask token per token; every token then gets the decoder's own fixed sin-cos position of its place in its
group and, where the layout has several groups (leads), a learned group embedding. Register outputs (MTAE's class
token) go in front. ``per_group`` decodes each group (lead) as its own sequence with shared weights, as ST-MEM's
decoder does; otherwise all tokens form one sequence. A linear layer maps each token to its samples.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgjepa.models.config import ModelConfig
from ecgjepa.models.layers import init_weights, transformer_blocks
from ecgjepa.models.pos_embed import sincos_pos_embed


class ReconstructionDecoder(nn.Module):
    """(visible tokens' encoder outputs, their indices) -> reconstructed samples of every token.

    Args:
        config: the encoder's model config (MLP ratio, biases, norm eps, init, longest input).
        dim, depth, num_heads: the decoder's width, blocks and heads.
        groups: token groups of the layout (leads for per-lead tokens, 1 for all-lead patches).
        max_per_group: the most tokens a group has (patches per lead at ``channel_size``).
        token_values: samples per token (the reconstruction target's width).
        per_group: decode each group as its own sequence.
    """

    def __init__(
        self,
        config: ModelConfig,
        dim: int,
        depth: int,
        num_heads: int,
        groups: int,
        max_per_group: int,
        token_values: int,
        per_group: bool,
    ) -> None:
        super().__init__()
        self.dim, self.groups, self.per_group = dim, groups, per_group
        self.embed = nn.Linear(config.dim, dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_pos_embed(max_per_group, dim), persistent=False)
        self.group_embed = nn.Parameter(torch.zeros(groups, 1, dim)) if groups > 1 else None
        self.blocks = transformer_blocks(config, dim, num_heads, depth)
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps, bias=True)
        self.proj = nn.Linear(dim, token_values, bias=True)
        init_weights(self, depth, config.init)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        if self.group_embed is not None:
            nn.init.trunc_normal_(self.group_embed, std=0.02)

    def forward(self, encoded: torch.Tensor, keep_idx: torch.Tensor, per_group: int, registers: int) -> torch.Tensor:
        """encoded: (B, R + K, D_enc) with the R register outputs first; keep_idx: (B, K) -> (B, N, token_values)
        for all N = groups * per_group tokens."""
        b = encoded.shape[0]
        h = self.embed(encoded)
        n = self.groups * per_group
        tokens = self.mask_token.to(h.dtype).expand(b, n, -1).clone()
        tokens.scatter_(1, keep_idx[..., None].expand(-1, -1, self.dim), h[:, registers:])
        positions = self.pos_embed[:per_group].expand(self.groups, -1, -1)
        if self.group_embed is not None:
            positions = positions + self.group_embed
        tokens = tokens + positions.reshape(1, n, self.dim)
        if self.per_group:
            if registers:
                raise ValueError("a per-group decoder takes no register tokens")
            tokens = tokens.reshape(b * self.groups, per_group, self.dim)
        else:
            tokens = torch.cat([h[:, :registers], tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        out = self.proj(self.norm(tokens))
        return out.reshape(b, n, -1) if self.per_group else out[:, registers:]

"""JEPA predictor (ECG-JEPA ``models/predictor.py``).

Context tokens are embedded to the predictor width and get the predictor's own sin-cos positions at
their indices; one learned mask token plus the positions of every target index forms the queries.
The sequence [context; mask tokens] runs through ``pred_depth`` blocks; the last ``M`` outputs are
projected back to the encoder width.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgjepa.models.config import ModelConfig
from ecgjepa.models.layers import gather_tokens, init_weights, transformer_blocks
from ecgjepa.models.pos_embed import sincos_pos_embed


class Predictor(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.embed = nn.Linear(c.dim, c.pred_dim, bias=c.bias)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.pred_dim))
        self.register_buffer("pos_embed", sincos_pos_embed(c.num_patches, c.pred_dim)[None], persistent=False)
        self.blocks = transformer_blocks(c, c.pred_dim, c.pred_num_heads, c.pred_depth)
        self.norm = nn.LayerNorm(c.pred_dim, eps=c.norm_eps, bias=c.bias)
        self.proj = nn.Linear(c.pred_dim, c.dim, bias=c.bias)
        # NOTE(parity): residual scaling uses the *encoder* depth, as the original does.
        init_weights(self, c.depth, c.init)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, context: torch.Tensor, keep_idx: torch.Tensor, pred_idx: torch.Tensor) -> torch.Tensor:
        """context: (B, K, D) encoder outputs; keep_idx: (B, K); pred_idx: (B, M) -> (B, M, D)."""
        x = self.embed(context) + gather_tokens(self.pos_embed, keep_idx)
        queries = self.mask_token + gather_tokens(self.pos_embed, pred_idx)
        x = torch.cat([x, queries], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.proj(x[:, -pred_idx.shape[1] :])

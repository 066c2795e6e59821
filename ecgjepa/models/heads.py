"""Evaluation heads (ECG-JEPA ``models/modules.py`` ``AttentivePooler`` / ``CrossAttention``).

The attentive probe is one learned query that cross-attends over all encoder tokens (register
included) and projects straight to the classes: no LayerNorm, MLP or residual. That is what the
paper calls "linear" evaluation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """Queries (B, Q, D) attend over tokens (B, N, D); output (B, Q, out_dim)."""

    def __init__(self, dim: int, num_heads: int, out_dim: int, qkv_bias: bool = False, bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, out_dim, bias=bias)

    def attention_weights(self, queries: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, Q, N): the softmax weights each query gives the tokens (what ``forward`` averages with)."""
        b, nq, d = queries.shape
        n, h = x.shape[1], self.num_heads
        q = self.q(queries).view(b, nq, h, d // h).transpose(1, 2)
        k = self.kv(x).view(b, n, 2, h, d // h)[:, :, 0].transpose(1, 2)
        return (q @ k.transpose(-2, -1) / (d // h) ** 0.5).softmax(dim=-1)

    def forward(self, queries: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, nq, d = queries.shape
        n, h = x.shape[1], self.num_heads
        q = self.q(queries).view(b, nq, h, d // h).transpose(1, 2)
        k, v = self.kv(x).view(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, nq, d)
        return self.proj(out)


class AttentivePooler(nn.Module):
    """One learned query token + :class:`CrossAttention` projecting to ``num_classes`` logits."""

    def __init__(self, dim: int, num_heads: int, num_classes: int, qkv_bias: bool = False, bias: bool = False) -> None:
        super().__init__()
        self.query_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cross_attention_block = CrossAttention(dim, num_heads, num_classes, qkv_bias, bias)
        nn.init.trunc_normal_(self.query_token, std=0.02)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, N): the query's attention over the tokens x (B, N, D), summing to one per head."""
        query = self.query_token.expand(x.shape[0], -1, -1)
        return self.cross_attention_block.attention_weights(query, x).squeeze(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D) -> logits (B, num_classes)."""
        return self.cross_attention_block(self.query_token.expand(x.shape[0], -1, -1), x).squeeze(1)

"""Transformer building blocks shared by the encoder, the predictor and the heads.

Mirrors ECG-JEPA ``models/modules.py``; attribute names (``norm1``, ``attn.qkv``, ``attn.proj``,
``norm2``, ``mlp.fc1``, ``mlp.fc2``) are kept so original checkpoints load by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ecgjepa.models.config import ModelConfig


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = False,
        bias: bool = False,
        attn_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.attn_dropout = attn_dropout
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D) -> (B, N, D)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = self.attend(q, k, v, self.attn_dropout if self.training else 0.0)
        x = x.transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(x))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) v for (B, H, N, d) queries, keys and values."""
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


class MLP(nn.Module):
    """fc1 -> exact (erf) GELU -> dropout -> fc2 -> dropout."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.fc2 = nn.Linear(hidden_dim, dim, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class LayerScale(nn.Module):
    """Per-channel learned scale, initialised to ``init_value``."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class Block(nn.Module):
    """Pre-norm transformer block: x + LS(attn(LN(x))), then x + LS(mlp(LN(x))). No drop-path."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        bias: bool = False,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        norm_eps: float = 1e-6,
        layer_scale_eps: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, bias=bias)
        self.attn = Attention(dim, num_heads, qkv_bias, bias, attn_dropout, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, bias=bias)
        self.mlp = MLP(dim, int(dim * mlp_ratio), bias, dropout)
        # LayerScale exists only when asked for, so checkpoints without it load strictly.
        self.attn_ls = LayerScale(dim, layer_scale_eps) if layer_scale_eps > 0 else nn.Identity()
        self.mlp_ls = LayerScale(dim, layer_scale_eps) if layer_scale_eps > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_ls(self.attn(self.norm1(x)))
        return x + self.mlp_ls(self.mlp(self.norm2(x)))


def transformer_blocks(
    config: ModelConfig, dim: int, num_heads: int, depth: int, layer_scale_eps: float = 0.0
) -> nn.ModuleList:
    """``depth`` blocks of width ``dim`` with the shared settings of ``config`` (MLP ratio, biases, dropout, eps)."""
    c = config
    return nn.ModuleList(
        Block(dim, num_heads, c.mlp_ratio, c.qkv_bias, c.bias, c.dropout, c.attn_dropout, c.norm_eps, layer_scale_eps)
        for _ in range(depth)
    )


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Select tokens by index. x: (B, N, D) or (1, N, D); idx: (B, K) int64 -> (B, K, D)."""
    if x.shape[0] == 1 and idx.shape[0] != 1:
        x = x.expand(idx.shape[0], -1, -1)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def init_weights(module: nn.Module, depth: int, scheme: str = "trunc_normal", std: float = 0.02) -> None:
    """Initialise Linear/Conv1d weights as ECG-JEPA HEAD (``504b4e5``) or its earlier Xavier scheme.

    Residual output projections (``attn.proj``, ``mlp.fc2``) get ``std / sqrt(2 * depth)``.
    """
    if scheme not in ("trunc_normal", "xavier_uniform"):
        raise ValueError(f"init must be 'trunc_normal' or 'xavier_uniform', got {scheme!r}")
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            if scheme == "xavier_uniform":
                nn.init.xavier_uniform_(m.weight)
            else:
                residual = name.endswith("attn.proj") or name.endswith("mlp.fc2")
                nn.init.trunc_normal_(m.weight, std=std / (2 * depth) ** 0.5 if residual else std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

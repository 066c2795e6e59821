"""Encoder + head for PTB-XL evaluation (ECG-JEPA ``models/vit_classifier.py``; same attribute names:
``encoder``, ``attn_pool`` or ``fc``)."""

from __future__ import annotations

import torch
from torch import nn

from ecgjepa.models.heads import AttentivePooler
from ecgjepa.models.vit import VisionTransformer


class ViTClassifier(nn.Module):
    """Logits from an ECG encoder.

    Args:
        encoder: the (pre-trained) encoder; its register outputs are used when ``use_register``.
        num_classes: output width.
        attn_pooling: attentive probe over all tokens (True) or a linear layer on the register /
            the token mean (False).
        use_register: keep the register token(s) in the encoder output.
        bias: bias of the head's output layer.
        frozen: the encoder gets no gradient and runs without autograd.
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        num_classes: int,
        attn_pooling: bool = True,
        use_register: bool = True,
        bias: bool = False,
        frozen: bool = False,
    ) -> None:
        super().__init__()
        if use_register and not encoder.num_registers:
            raise ValueError("use_register=True needs an encoder with at least one register token")
        self.encoder = encoder
        self.attn_pooling = attn_pooling
        self.use_register = use_register
        self.frozen = frozen
        cfg = encoder.config
        if attn_pooling:
            self.attn_pool = AttentivePooler(cfg.dim, cfg.num_heads, num_classes, cfg.qkv_bias, cfg.bias)
        else:
            self.fc = nn.Linear(cfg.dim, num_classes, bias=bias)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.startswith("encoder."):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if frozen:
            self.encoder.requires_grad_(False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                return self.encoder(x, keep_registers=self.use_register)
        return self.encoder(x, keep_registers=self.use_register)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T) -> logits (B, num_classes)."""
        tokens = self.encode(x)
        if self.attn_pooling:
            return self.attn_pool(tokens)
        pooled = tokens[:, 0] if self.use_register else tokens.mean(dim=1)
        return self.fc(pooled)

"""Encoder + head for evaluation (ECG-JEPA ``models/vit_classifier.py``; same attribute names: ``encoder``,
``attn_pool`` or ``fc``), for the ViT and the supervised baselines' sequence encoders alike."""

from __future__ import annotations

import torch
from torch import nn

from ecgjepa.models.heads import AttentivePooler
from ecgjepa.models.lead_vit import LeadViT
from ecgjepa.models.sequence import SequenceEncoder
from ecgjepa.models.vit import VisionTransformer


class Classifier(nn.Module):
    """Logits from an ECG encoder's tokens (B, N, D) through one head: the attentive probe over all tokens, a
    linear layer on the register token or on the token mean, or the head the encoder's source trains it with.

    Args:
        encoder: the (pre-trained) encoder: a :class:`VisionTransformer`, a :class:`LeadViT` or a
            :class:`SequenceEncoder`.
        num_classes: output width.
        attn_pooling: attentive probe over all tokens (True) or a linear layer on the register /
            the token mean (False).
        use_register: keep the register token(s) in the encoder output, where the encoder has them (the ViT's
            register, MTAE's class token); an encoder without registers gives its tokens alone.
        bias: bias of the linear head's output layer.
        frozen: the encoder gets no gradient and runs without autograd.
        source_head: the encoder's own head (a baseline's, as its source trains it) instead of the above.
    """

    def __init__(
        self,
        encoder: VisionTransformer | LeadViT | SequenceEncoder,
        num_classes: int,
        attn_pooling: bool = True,
        use_register: bool = True,
        bias: bool = False,
        frozen: bool = False,
        source_head: bool = False,
    ) -> None:
        super().__init__()
        name = encoder.config.name
        use_register = use_register and encoder.num_registers > 0
        if source_head and not isinstance(encoder, SequenceEncoder):
            raise ValueError(f"protocol.source_head=true: {name} has no head of its own; use the protocol's heads")
        if source_head and attn_pooling:
            raise ValueError("protocol.source_head=true and protocol.attn_pooling=true: choose one head")
        self.encoder = encoder
        self.attn_pooling, self.use_register, self.frozen, self.source_head = (
            attn_pooling,
            use_register,
            frozen,
            source_head,
        )
        dim, heads, qkv_bias, proj_bias = probe_shape(encoder)
        if source_head:
            self.head = encoder.source_head(num_classes)
        elif attn_pooling:
            self.attn_pool = AttentivePooler(dim, heads, num_classes, qkv_bias, proj_bias)
        else:
            self.fc = nn.Linear(dim, num_classes, bias=bias)
        for module_name, m in self.named_modules():
            if isinstance(m, nn.Linear) and module_name.split(".")[0] in ("attn_pool", "fc"):
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
        if self.source_head:
            return self.head(tokens)
        if self.attn_pooling:
            return self.attn_pool(tokens)
        pooled = tokens[:, 0] if self.use_register else tokens.mean(dim=1)
        return self.fc(pooled)


def probe_shape(encoder: VisionTransformer | LeadViT | SequenceEncoder) -> tuple[int, int, bool, bool]:
    """(token width, attention heads, qkv bias, projection bias) of the attentive probe over ``encoder``."""
    if isinstance(encoder, (VisionTransformer, LeadViT)):
        cfg = encoder.config
        return cfg.dim, cfg.num_heads, cfg.qkv_bias, cfg.bias
    return encoder.embed_dim, encoder.config.probe_heads, False, False

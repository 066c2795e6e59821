"""Self-attention in bf16 on a CPU without a float32 copy of the attention matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ecgjepa.models.layers import Attention


class CPUBfloat16Attention(Attention):
    """:class:`Attention` whose bf16 CPU forwards compute the scores with one bf16 ``baddbmm`` (float32
    accumulation, one rounding) and the softmax in bf16.

    At these sequence lengths (<= 201 tokens) torch's fused CPU attention kernels run bf16 2-3x slower than
    plain bf16 matrix products in the backward pass, and autocast would run the softmax in float32 on a
    float32 copy of the (B, H, N, M) scores. Other dtypes, devices and compiled graphs take the fused kernel.
    """

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
        if q.dtype != torch.bfloat16 or q.device.type != "cpu" or torch.compiler.is_compiling():
            return super().attend(q, k, v, dropout_p)
        b, h, n, d = q.shape
        m = k.shape[-2]
        with torch.autocast("cpu", enabled=False):
            scores = torch.baddbmm(
                q.new_empty(()), q.reshape(b * h, n, d), k.reshape(b * h, m, d).transpose(1, 2), beta=0, alpha=d**-0.5
            )
            weights = F.dropout(scores.softmax(dim=-1), dropout_p)
            return torch.bmm(weights, v.reshape(b * h, m, d)).view(b, h, n, d)

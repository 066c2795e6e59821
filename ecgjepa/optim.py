"""The pre-training optimisation recipe and the optimizer construction shared by pre-training and evaluation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ecgjepa.models.config import strict_fields
from ecgjepa.schedules import learning_rate


@dataclass(frozen=True)
class OptimConfig:
    """Pre-training optimisation (keys as in ECG-JEPA's pre-training configs; the values: conf/optim/)."""

    steps: int
    learning_rate: float
    final_learning_rate: float
    learning_rate_warmup_steps: int
    weight_decay: float
    final_weight_decay: float
    opt_betas: tuple[float, float]
    opt_eps: float
    fused: bool | None
    optimizer: str = "adamw"  # the pre-training configs before this key trained with AdamW

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optim.optimizer: expected one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> OptimConfig:
        """Build from the ``optim`` group; an unknown or missing key fails naming it."""
        fields = strict_fields(cls, cfg, "optim")
        return cls(**{**fields, "opt_betas": tuple(fields["opt_betas"])})

    def lr_at(self, step: int) -> float:
        return learning_rate(
            step, self.learning_rate, self.final_learning_rate, self.learning_rate_warmup_steps, self.steps
        )


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """Two AdamW groups: weights of Linear/Conv1d (decayed) and everything else (not decayed).

    Each group carries ``use_weight_decay`` so a weight-decay schedule touches only the first
    (the flag and the grouping follow ECG-JEPA's ``get_optimizer``).
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    modules = list(modules)
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)) and m.weight.requires_grad and id(m.weight) not in seen:
                decay.append(m.weight)
                seen.add(id(m.weight))
    for module in modules:
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                no_decay.append(p)
                seen.add(id(p))
    return [
        {"params": decay, "weight_decay": weight_decay, "use_weight_decay": True},
        {"params": no_decay, "weight_decay": 0.0, "use_weight_decay": False},
    ]


def adamw(
    groups: list[dict],
    lr: float,
    betas: tuple[float, float],
    eps: float,
    fused: bool | None = None,
    optimizer: str = "adamw",
) -> torch.optim.Optimizer:
    """AdamW (or ``optimizer="adam"``: Adam, whose weight decay is an L2 term in the gradient, as the contrastive
    methods' source trains); ``fused=None`` picks the fused kernel on CUDA and torch's default elsewhere (on the CPU
    a loop over the tensors, as the original's CPU runs; fused would save < 1 % of a step there,
    docs/performance.md)."""
    on_cuda = any(p.is_cuda for g in groups for p in g["params"])
    if fused is None:
        fused = on_cuda
    return OPTIMIZERS[optimizer](groups, lr=lr, betas=tuple(betas), eps=eps, fused=fused or None)


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}

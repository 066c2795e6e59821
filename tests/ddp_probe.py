"""A callback that a multi-process test adds from the command line (``+callbacks.probe._target_=...``):
each rank writes the batch sizes it trained on and digests of its weights when training ends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch

RANK_LOCAL = ("running_mean", "running_var", "num_batches_tracked")


def digest(module: torch.nn.Module) -> str:
    """A hash of the weights: every parameter and buffer but batch norms' running statistics, which DDP keeps per
    rank (each rank's last batch updates its own; rank 0's are checkpointed)."""
    sha = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if name.rsplit(".", 1)[-1] in RANK_LOCAL:
            continue
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


class RankProbe(L.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.batch_sizes: list[int] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.batch_sizes.append(int(batch[0].shape[0]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        report = {
            "world_size": trainer.world_size,
            "batch_sizes": self.batch_sizes,
            "networks": {name: digest(child) for name, child in pl_module.named_children()},
        }
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))

"""Steps of the original ECG-JEPA, for measuring it side by side with ours (``bench.py --original DIR``).

Nothing of the original is shipped here: ``DIR`` is the user's own checkout of kweimann/ECG-JEPA, whose
``configs`` and ``models`` packages are imported from there. Each step does what the original's
``pretrain.py`` / ``finetune.py`` loop does on a CPU: hand-written softmax attention
(``use_sdp_kernel=False``), non-fused AdamW, the EMA update inside the forward pass, ``loss.item()``
per step, gradient clipping where its config asks for it, crops cut by the data pipeline (outside the
step). bf16 is not available there on a CPU; with ``bf16`` the forward runs under a forced bf16
autocast, as in the issue's measurement. Masks come from our collator (same ``rng_for`` sequence as our
step, so both sides process the same kept/predicted patch counts); the original's own collator draws
them from the same distribution.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

PRETRAIN_CONFIGS = {"vit_xs": "ViTXS_ptbxl.yaml", "vit_s": "ViTS_ptbxl.yaml", "vit_b": "ViTB_all.yaml"}
EVAL_CONFIGS = {"linear": "linear.yaml", "eval": "linear.yaml", "finetune": "finetune.yaml"}
NUM_CLASSES = 71


def import_original(original_dir: str) -> tuple:
    """(configs, models) packages of the checkout at ``original_dir``; a clear error if it is not one."""
    root = Path(original_dir)
    missing = [p for p in ("configs/pretrain/__init__.py", "models/JEPA.py") if not (root / p).is_file()]
    if missing:
        raise SystemExit(f"--original {original_dir}: not a checkout of kweimann/ECG-JEPA (missing {missing})")
    sys.path.insert(0, str(root.resolve()))
    import configs
    import models

    return configs, models


def make_original_step(work: str, model: str, batch: int, bf16: bool, original_dir: str) -> Callable:
    """The original's step for ``work`` (same signature as ``bench.make_step``'s steps)."""
    from ecgjepa.data.masks import BlockMaskCollator

    configs, models = import_original(original_dir)
    root = Path(original_dir) / "configs"
    pre_cfg = configs.pretrain.Config(
        **configs.load_config_file(root / "pretrain" / PRETRAIN_CONFIGS[model], batch_size=batch)
    )
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    if work == "pretrain":
        jepa = models.JEPA(pre_cfg, momentum_schedule=itertools.repeat(0.999), use_sdp_kernel=False)
        opt = jepa.get_optimizer(fused=False)
        collator = BlockMaskCollator(pre_cfg.patch_size, pre_cfg.min_block_size, 0.15, 0.25)
        x = torch.randn(batch, 12, pre_cfg.channel_size)
        counter = iter(range(10**9))

        def step() -> None:
            keep, pred = collator.sample(batch, 200, collator.rng_for(next(counter)))
            with autocast:
                loss = jepa(x, keep, pred)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss.item()

        return step
    eval_cfg = configs.eval.Config(
        **configs.load_config_file(root / "eval" / EVAL_CONFIGS[work], num_classes=NUM_CLASSES)
    )
    enc_cfg = pre_cfg.__class__(**{**pre_cfg.__dict__, "dropout": eval_cfg.dropout})
    encoder = models.VisionTransformer(enc_cfg, keep_registers=eval_cfg.use_register, use_sdp_kernel=False)
    classifier = models.ViTClassifier(encoder, eval_cfg, use_sdp_kernel=False)
    crop = int(eval_cfg.crop_duration * pre_cfg.sampling_frequency)
    if work == "eval":
        classifier.eval()
        stride = int(eval_cfg.crop_stride * pre_cfg.sampling_frequency)
        crops = torch.randn(batch, 12, pre_cfg.channel_size).unfold(2, crop, stride).transpose(1, 2).contiguous()

        def eval_step(count_flops: bool = False) -> None:
            with torch.inference_mode(not count_flops), autocast:
                logits = classifier(crops.reshape(-1, 12, crop))
                logits.reshape(batch, crops.shape[1], NUM_CLASSES).mean(dim=1)

        return eval_step
    opt = classifier.get_optimizer(fused=False)
    x, y = torch.randn(batch, 12, crop), (torch.rand(batch, NUM_CLASSES) < 0.1).float()

    def train_step() -> None:
        with autocast:
            loss = F.binary_cross_entropy_with_logits(classifier(x), y)
        loss.backward()
        if eval_cfg.gradient_clip > 0:
            torch.nn.utils.clip_grad_norm_(classifier.parameters(), eval_cfg.gradient_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    return train_step

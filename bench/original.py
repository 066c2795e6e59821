"""Steps of the original ECG-JEPA, for measuring it side by side with ours (``bench.py --original DIR``).

Nothing of the original is shipped here: ``DIR`` is the user's own checkout of kweimann/ECG-JEPA, whose
``configs`` and ``models`` packages are imported from there. Each step does what the original's
``pretrain.py`` / ``finetune.py`` loop does on the device: on a CPU hand-written softmax attention
(``use_sdp_kernel=False``) and non-fused AdamW, on CUDA SDPA and fused AdamW (TF32 is set by the bench,
as its scripts do); the EMA update inside the forward pass, ``loss.item()`` per step, gradient clipping
where its config asks for it, crops cut by the data pipeline (outside the step). bf16 is not available
there on a CPU; with ``bf16`` the forward runs under a forced bf16 autocast, as in the issue's
measurement (on CUDA that is its ``--amp bfloat16``). Masks come from the bench's pool (the same
``rng_for`` draws as our step, so both sides process the same kept/predicted patch counts); the
original's own collator draws them from the same distribution. ``compile`` wraps the model in
``torch.compile`` as its ``--compile`` flag does.
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


def make_original_step(
    work: str, model: str, batch: int, bf16: bool, original_dir: str, device: torch.device
) -> tuple[Callable, Callable | None]:
    """The original's step for ``work`` and its compile function (as ``bench.make_step`` returns them)."""
    from timing_masks import mask_pool

    configs, models = import_original(original_dir)
    on_cuda = device.type == "cuda"
    root = Path(original_dir) / "configs"
    pre_cfg = configs.pretrain.Config(
        **configs.load_config_file(root / "pretrain" / PRETRAIN_CONFIGS[model], batch_size=batch)
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    if work == "pretrain":
        jepa = models.JEPA(pre_cfg, momentum_schedule=itertools.repeat(0.999), use_sdp_kernel=on_cuda).to(device)
        opt = jepa.get_optimizer(fused=on_cuda)
        masks = mask_pool(batch, pre_cfg.patch_size, pre_cfg.min_block_size, device)
        x = torch.randn(batch, 12, pre_cfg.channel_size, device=device)

        def step() -> None:
            keep, pred = next(masks)
            with autocast:
                loss = jepa(x, keep, pred)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss.item()

        def compile_model() -> None:
            nonlocal jepa
            jepa = torch.compile(jepa)

        return step, compile_model
    eval_cfg = configs.eval.Config(
        **configs.load_config_file(root / "eval" / EVAL_CONFIGS[work], num_classes=NUM_CLASSES)
    )
    enc_cfg = pre_cfg.__class__(**{**pre_cfg.__dict__, "dropout": eval_cfg.dropout})
    encoder = models.VisionTransformer(enc_cfg, keep_registers=eval_cfg.use_register, use_sdp_kernel=on_cuda)
    classifier = models.ViTClassifier(encoder, eval_cfg, use_sdp_kernel=on_cuda).to(device)
    crop = int(eval_cfg.crop_duration * pre_cfg.sampling_frequency)
    if work == "eval":
        classifier.eval()
        stride = int(eval_cfg.crop_stride * pre_cfg.sampling_frequency)
        signals = torch.randn(batch, 12, pre_cfg.channel_size, device=device)
        crops = signals.unfold(2, crop, stride).transpose(1, 2).contiguous()

        def eval_step(count_flops: bool = False) -> None:
            with torch.inference_mode(not count_flops), autocast:
                logits = classifier(crops.reshape(-1, 12, crop))
                logits.reshape(batch, crops.shape[1], NUM_CLASSES).mean(dim=1)

        return eval_step, None
    opt = classifier.get_optimizer(fused=on_cuda)
    x = torch.randn(batch, 12, crop, device=device)
    y = (torch.rand(batch, NUM_CLASSES, device=device) < 0.1).float()

    def train_step() -> None:
        with autocast:
            loss = F.binary_cross_entropy_with_logits(classifier(x), y)
        loss.backward()
        if eval_cfg.gradient_clip > 0:
            torch.nn.utils.clip_grad_norm_(classifier.parameters(), eval_cfg.gradient_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    return train_step, None

"""What a classifier's score of one class rests on, for one record: integrated gradients or the attentive probe's
attention.

Both explain the record-level logit that evaluation and ``ecgjepa-predict`` compute: the run's strided windows
passed through encoder and head, their logits averaged (:meth:`ClassifierModule.forward`).

* Integrated gradients (Sundararajan et al., 2017; captum's ``IntegratedGradients``): the gradient of the logit
  integrated along the straight path from a baseline input to the record, times their difference. The baseline is
  zero, the mean of every lead after normalisation. By completeness the attributions sum to
  ``score - baseline_score`` up to the integral's error, which the number of steps bounds.
* Attention: the attentive probe is one query attending over the encoder's tokens, so its attention weights (mean
  over heads) say which tokens the logits are read from, for every class alike. Each window's weights sum to one
  over its tokens; a sample's value is its token's weight shared over the token's samples, averaged over the
  windows that contain it (registers hold no time and are left out of the map).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from captum.attr import IntegratedGradients

from ecgjepa.models import VisionTransformer
from ecgjepa.modules.classifier import ClassifierModule, crop_batch, crop_starts

METHODS = ("integrated_gradients", "attention")


class Explanation(NamedTuple):
    attributions: np.ndarray  # (leads, samples) at the model's input rate
    score: float  # the class logit of the record
    baseline_score: float  # the class logit of the baseline (zero) input; the score for attention maps
    token_attention: np.ndarray | None  # (windows, tokens) of the attention method, each row summing to one


@contextmanager
def gradients_through_encoder(module: ClassifierModule) -> Iterator[None]:
    """Let gradients reach the input through a frozen encoder (its weights stay untouched)."""
    frozen = module.model.frozen
    module.model.frozen = False
    try:
        yield
    finally:
        module.model.frozen = frozen


def class_logit(module: ClassifierModule, x: torch.Tensor, target: int) -> torch.Tensor:
    return module(x.float())[:, target]


def integrated_gradients(module: ClassifierModule, x: torch.Tensor, target: int, steps: int) -> Explanation:
    """Integrated gradients of class ``target``'s logit for one record x (1, leads, samples), in float32."""
    if steps < 1:
        raise ValueError(f"steps={steps}: expected at least 1")
    baseline = torch.zeros_like(x)
    with gradients_through_encoder(module):
        method = IntegratedGradients(lambda inputs: class_logit(module, inputs, target))
        attributions = method.attribute(x.float(), baselines=baseline, n_steps=steps, internal_batch_size=steps)
    with torch.no_grad():
        score, baseline_score = class_logit(module, torch.cat([x, baseline]), target).tolist()
    return Explanation(attributions[0].detach().numpy(), score, baseline_score, None)


@torch.no_grad()
def probe_attention(module: ClassifierModule, x: torch.Tensor, target: int) -> Explanation:
    """The attentive probe's attention over the tokens of each window of one record x (1, leads, samples)."""
    classifier = module.model
    encoder = classifier.encoder
    if not classifier.attn_pooling:
        raise ValueError("method=attention explains a run with the attentive probe (protocol=linear or LP-FT)")
    if not isinstance(encoder, VisionTransformer):
        raise ValueError("method=attention maps all-lead patch tokens to time: the run's encoder has other tokens")
    length, patch = x.shape[-1], encoder.patch_embed.patch_size
    crop, stride = (module.crop, module.stride) if module.crop is not None else (length, length)
    windows = crop_batch(x.float(), None, crop, stride)[0]  # (K, leads, crop)
    tokens = classifier.encode(windows)
    weights = classifier.attn_pool.attention_weights(tokens).mean(dim=1)  # (K, registers + patches)
    registers = tokens.shape[1] - crop // patch
    per_sample = torch.zeros(length)
    covered = torch.zeros(length)
    for k, start in enumerate(crop_starts(length, crop, stride)):
        per_sample[start : start + crop] += weights[k, registers:].repeat_interleave(patch) / patch
        covered[start : start + crop] += 1
    score = class_logit(module, x, target).item()
    attributions = (per_sample / covered.clamp(min=1)).expand(x.shape[1], -1).numpy()
    return Explanation(attributions, score, score, weights.numpy())


def explain(module: ClassifierModule, x: torch.Tensor, target: int, method: str, steps: int) -> Explanation:
    """One record's explanation by ``method`` (one of :data:`METHODS`)."""
    if method == "integrated_gradients":
        return integrated_gradients(module, x, target, steps)
    if method == "attention":
        return probe_attention(module, x, target)
    raise ValueError(f"method={method}: expected one of {METHODS}")

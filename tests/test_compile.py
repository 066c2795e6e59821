"""`compile=true`: one graph per module across changing context lengths, bf16 included, same loss as eager."""

from __future__ import annotations

import torch
from torch._dynamo.utils import counters

from ecgjepa.data.masks import BlockMaskCollator
from ecgjepa.models import ModelConfig
from ecgjepa.modules.jepa import JEPAModule

TINY = ModelConfig(dim=32, depth=2, num_heads=2, pred_dim=16, pred_depth=2, pred_num_heads=2).to_dict()


def test_compiled_pretraining_does_not_recompile_per_context_length() -> None:
    torch.manual_seed(0)
    eager = JEPAModule(TINY, {})
    compiled = JEPAModule(TINY, {}, compile=True)
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    compiled.configure_model()
    x = torch.randn(2, 12, 5000)
    collator = BlockMaskCollator(25, 10, 0.15, 0.25)
    lengths = set()
    for i in range(5):
        keep, pred = collator.sample(2, 200, collator.rng_for(i))
        lengths.add(keep.shape[1])
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the path inductor 2.13 failed on
            loss, _ = compiled.jepa_loss(x, keep, pred)
            expected, _ = eager.jepa_loss(x, keep, pred)
        loss.backward()
        assert torch.isfinite(loss)
        torch.testing.assert_close(loss, expected, rtol=2e-2, atol=0)
    assert len(lengths) >= 3
    assert counters["stats"]["unique_graphs"] == 3  # encoder, predictor, target encoder: compiled once each

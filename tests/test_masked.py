"""The masked-reconstruction methods (ecgjepa.modules.masked, ecgjepa.data.token_masks, ecgjepa.models.lead_vit,
ecgjepa.models.decoder): mask structure, what the encoder and decoder see, the loss by hand, training on the real
sample, evaluation and prediction of the encoder they export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgjepa.cli import user_error
from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.data.token_masks import random_lead_mask, token_masks
from ecgjepa.eval import run as eval_run
from ecgjepa.formats.export import read_export
from ecgjepa.modules.masked import MaskedReconstructionModule, masked_mse
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import load_group_option
from tests.helpers import REPO

METHODS = ("st_mem", "mtae", "mlae")
# One method's settings as its conf/method option gives them, on a tiny ViT; (tokenizer, patch, registers, mask
# structure, decoder per lead).
SETTINGS = {
    "st_mem": ("lead_patches", 75, 0, "within_groups", True),
    "mtae": ("patches", 75, 1, "within_groups", False),
    "mlae": ("leads", 2250, 0, "whole_groups", False),
}


def tiny_method(name: str, random_lead_masking: float = 0.0) -> MaskedReconstructionModule:
    tokenizer, patch, registers, structure, per_lead = SETTINGS[name]
    model = {
        **load_group_option("model", "vit_tiny"),
        "tokenizer": tokenizer,
        "patch_size": patch,
        "num_registers": registers,
        "channels": list(CANONICAL_LEADS),
        "channel_size": 2250,
        "sampling_frequency": 250,
    }
    decoder = {"dim": 16, "depth": 1, "num_heads": 2, "per_lead": per_lead}
    optim = load_group_option("optim", "demo")
    torch.manual_seed(0)
    return MaskedReconstructionModule(name, 0.75, structure, decoder, True, random_lead_masking, 0, model, optim)


def test_the_method_configs_give_these_settings() -> None:
    for name, (tokenizer, patch, registers, structure, per_lead) in SETTINGS.items():
        option = (REPO / "conf" / "method" / f"{name}.yaml").read_text()
        assert f"tokenizer: {tokenizer}" in option and f"patch_size: {patch}" in option
        assert f"mask_structure: {structure}" in option
        assert ("per_lead: true" in option) == per_lead
        assert ("num_registers: 1" in option) == bool(registers)


def test_st_mem_masks_the_same_share_of_every_lead_independently() -> None:
    keep, hidden = token_masks(64, 12, 30, 0.75, "within_groups", torch.Generator().manual_seed(0))
    assert keep.shape == (64, 12 * 7) and hidden.shape == (64, 12 * 23)  # int(30 * 0.25) = 7 kept, as ST-MEM
    assert torch.equal(torch.cat([keep, hidden], 1).sort(1).values, torch.arange(360).expand(64, -1))
    per_lead = torch.stack([(keep // 30 == lead).sum(1) for lead in range(12)], 1)
    assert (per_lead == 7).all()
    patterns = {tuple((keep[0][keep[0] // 30 == lead] % 30).tolist()) for lead in range(12)}
    assert len(patterns) > 1, "every lead hid the same patches: the leads are not masked independently"


def test_mlae_masks_whole_leads() -> None:
    keep, hidden = token_masks(64, 12, 1, 0.75, "whole_groups", torch.Generator().manual_seed(0))
    assert keep.shape == (64, 3) and hidden.shape == (64, 9)
    keep, hidden = token_masks(8, 12, 30, 0.75, "whole_groups", torch.Generator().manual_seed(0))
    for row in hidden:
        leads, counts = (row // 30).unique(return_counts=True)
        assert len(leads) == 9 and (counts == 30).all()


def test_random_lead_masking_drops_leads_but_never_all() -> None:
    kept = random_lead_mask(10_000, 12, 0.5, torch.Generator().manual_seed(0))
    assert abs(1 - kept.mean().item() - 0.5) < 0.02
    assert (kept.sum(1) >= 1).all()


@pytest.mark.parametrize("name", METHODS)
def test_the_encoder_and_decoder_never_see_the_hidden_samples(name: str) -> None:
    """Changing the samples of the hidden tokens changes neither the encoder's outputs nor the predictions."""
    module = tiny_method(name).eval()
    x = torch.randn(2, 12, 2250)
    before = module.reconstruct(x, torch.Generator().manual_seed(3))
    hidden = torch.zeros(2, before.predictions.shape[1], dtype=torch.bool)
    hidden.scatter_(1, before.mask_idx, True)
    patches = module.encoder.patchify(x).clone()
    patches[hidden] = torch.randn_like(patches[hidden]) * 10
    changed = unpatchify(module, patches, x.shape)
    assert not torch.equal(changed, x)
    after = module.reconstruct(changed, torch.Generator().manual_seed(3))
    torch.testing.assert_close(after.encoded, before.encoded, rtol=0, atol=1e-5)
    torch.testing.assert_close(after.predictions, before.predictions, rtol=0, atol=1e-5)
    assert after.loss != before.loss  # the targets are the hidden samples


def unpatchify(module: MaskedReconstructionModule, patches: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The inverse of the encoder's ``patchify``, found by patchifying an index signal."""
    index = torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(shape)
    order = module.encoder.patchify(index).flatten(1).long()  # position in x of every patch value
    out = torch.empty(shape[0], int(np.prod(shape[1:])))
    out.scatter_(1, order - order[:, :1], patches.flatten(1))
    return out.reshape(shape)


def test_the_loss_ignores_the_visible_tokens_targets() -> None:
    predictions, targets = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    mask_idx = torch.tensor([[1, 4], [0, 5]])
    loss = masked_mse(predictions, targets, mask_idx, True)
    visible = torch.ones(2, 6, dtype=torch.bool).scatter_(1, mask_idx, False)
    targets[visible] = 100.0
    assert masked_mse(predictions, targets, mask_idx, True) == loss


def test_masked_mse_by_hand() -> None:
    """Two tokens of 4 samples, the second hidden: target (4, 4, 8, 0) has mean 4 and variance 8."""
    predictions = torch.tensor([[[9.0, 9, 9, 9], [1.0, 0, 1, -1]]])
    targets = torch.tensor([[[0.0, 0, 0, 0], [4.0, 4, 8, 0]]])
    z = np.array([0, 0, 4, -4]) / np.sqrt(8 + 1e-6)
    expected = np.mean((np.array([1.0, 0, 1, -1]) - z) ** 2)
    loss = masked_mse(predictions, targets, torch.tensor([[1]]), normalise_targets=True)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    raw = masked_mse(predictions, targets, torch.tensor([[1]]), normalise_targets=False)
    assert raw.item() == pytest.approx(np.mean((np.array([1.0, 0, 1, -1]) - [4, 4, 8, 0]) ** 2))


@pytest.mark.parametrize("name", METHODS)
def test_each_methods_loss_equals_a_hand_computation(name: str) -> None:
    """The loss from the predictions: targets cut from the signal sample by sample in numpy (lead-major patches for
    the per-lead tokenisations, time patches across all leads for MTAE), normalised, averaged over hidden tokens."""
    module = tiny_method(name).eval()
    x = torch.randn(2, 12, 2250, generator=torch.Generator().manual_seed(1))
    out = module.reconstruct(x, torch.Generator().manual_seed(5))
    signal, predictions = x.numpy().astype(np.float64), out.predictions.detach().numpy().astype(np.float64)
    patch = SETTINGS[name][1]
    errors = []
    for b in range(2):
        for token in out.mask_idx[b].tolist():
            if name == "mtae":  # all leads of time patch `token`, lead by lead
                target = signal[b, :, token * patch : (token + 1) * patch].reshape(-1)
            else:  # lead token // n, patch token % n
                n = 2250 // patch
                lead, i = divmod(token, n)
                target = signal[b, lead, i * patch : (i + 1) * patch]
            z = (target - target.mean()) / np.sqrt(target.var() + 1e-6)
            errors.append(np.mean((predictions[b, token] - z) ** 2))
    assert out.loss.item() == pytest.approx(np.mean(errors), rel=1e-5)


def test_random_lead_masking_zeroes_input_leads_not_targets() -> None:
    with_rlm = tiny_method("mtae", random_lead_masking=0.5).eval()
    without = tiny_method("mtae").eval()
    x = torch.randn(2, 12, 2250)
    a = with_rlm.reconstruct(x, torch.Generator().manual_seed(2))
    b = without.reconstruct(x, torch.Generator().manual_seed(2))
    assert torch.equal(a.keep_idx, b.keep_idx)  # the lead draw comes after the token mask's
    assert not torch.allclose(a.encoded, b.encoded)


@pytest.mark.parametrize("name", METHODS)
def test_pretraining_on_the_sample_lowers_the_loss(name: str, train_cfg, tmp_path: Path) -> None:
    steps = 30
    cfg = train_cfg(
        f"method={name}",
        "logger=csv",
        f"trainer.max_steps={steps}",
        f"optim.steps={steps}",
        "optim.learning_rate_warmup_steps=5",
        "data.batch_size=8",
        "method.decoder.depth=1",
    )
    train_run(cfg)
    losses = pd.read_csv(next(tmp_path.rglob("metrics.csv")))["train/loss"].dropna().to_numpy()
    assert len(losses) == steps
    assert losses[-10:].mean() < 0.95 * losses[:5].mean(), losses
    config, state, description = read_export(tmp_path / "encoder")
    assert description["pretraining"]["method"] == name
    assert config.tokenizer == SETTINGS[name][0] and config.sampling_frequency == 250
    assert config.band_pass == (0.67, 40.0) and config.standardise == "ecg"
    assert not any(key.startswith("decoder.") for key in state)


def test_jepa_refuses_what_it_cannot_train(train_cfg) -> None:
    for overrides, message in (
        (["model.tokenizer=lead_patches"], "method=jepa predicts all-lead patch tokens: model.tokenizer"),
        (["data.masks=false"], "method=jepa trains on the data stream's block masks: data.masks must be true"),
    ):
        with pytest.raises(Exception, match=message) as raised:
            train_run(train_cfg(*overrides))
        assert user_error(raised.value) is not None  # reported as one line, exit status 2


@pytest.mark.parametrize("name", METHODS)
def test_the_exported_encoder_evaluates_and_predicts(name: str, train_cfg, eval_cfg, tmp_path: Path) -> None:
    pretrain_dir = tmp_path / "pretrain"
    train_run(train_cfg(f"method={name}", output_dir=pretrain_dir))
    eval_dir = tmp_path / "eval"
    metrics = eval_run(eval_cfg(f"encoder={pretrain_dir}", "task=st_mem", output_dir=eval_dir))
    assert metrics["encoder_name"] == "pretrain"
    assert 0 <= metrics["test_auroc"] <= 1
    assert metrics["method"] == name
    lpft = eval_run(eval_cfg(f"encoder={eval_dir}", "task=st_mem", output_dir=tmp_path / "again"))
    assert lpft["method"] == name  # an evaluation run passes its encoder's method on
    predictor = (eval_dir / "predictor.json").read_text()
    assert '"input_rate": 250' in predictor and '"standardise": "ecg"' in predictor
    from ecgjepa.predict import main as predict_main

    records = tmp_path / "records"
    records.mkdir()
    for header in sorted((REPO / "sample_data" / "ptbxl" / "records100" / "00000").glob("*.hea"))[:8]:
        for part in (header, header.with_suffix(".dat")):
            (records / part.name).symlink_to(part)
    out = tmp_path / "predictions.csv"
    predict_main([f"run={eval_dir}", f"input={records}", f"output={out}"])
    table = pd.read_csv(out)
    assert len(table) == 8 and set(table.columns) >= {"record_id", "labels"}


def test_export_embed_and_convert_know_the_method(train_cfg, tmp_path: Path) -> None:
    from ecgjepa.embed import main as embed_main
    from ecgjepa.export import export
    from ecgjepa.formats.files import CheckpointError
    from ecgjepa.formats.original import convert

    run_dir = tmp_path / "pretrain"
    train_run(train_cfg("method=st_mem", output_dir=run_dir))
    card = (export(run_dir, tmp_path / "export") / "README.md").read_text()
    assert "method=st_mem" in card and "ST-MEM" in card and "0.67-40 Hz band-pass" in card
    config, _, description = read_export(tmp_path / "export")
    assert description["pretraining"]["method"] == "st_mem" and description["input"]["sampling_frequency"] == 250
    for source in (run_dir / "checkpoints" / "last.ckpt", tmp_path / "export"):
        with pytest.raises(CheckpointError, match="a method=st_mem checkpoint has no counterpart in the original"):
            convert(source, tmp_path / "converted.pt", "original")
    records = REPO / "sample_data" / "ptbxl" / "records100" / "00000"
    manifest = tmp_path / "records"
    manifest.mkdir()
    for header in sorted(records.glob("*.hea"))[:3]:
        for part in (header, header.with_suffix(".dat")):
            (manifest / part.name).symlink_to(part)
    embed_main([f"encoder={tmp_path / 'export'}", f"input={manifest}", f"output={tmp_path / 'emb.npy'}"])
    assert np.load(tmp_path / "emb.npy").shape == (3, config.dim)

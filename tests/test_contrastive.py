"""The contrastive and predictive-coding methods (ecgjepa.modules.{simclr,byol,moco,cmsc,cpc,losses,two_view},
ecgjepa.data.augment, ecgjepa.models.projection): augmentations draw what they are configured to draw, seeded; each
loss equals a hand computation; negatives gathered across two processes give the one-process loss of the whole
batch; each method lowers its loss on the real sample and its encoder evaluates."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from ecgjepa.callbacks.target_momentum import update_targets
from ecgjepa.cli import user_error
from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.data.augment import ChannelResize, GaussianNoise, RandomResizedCrop, TimeOut, build_augmentation
from ecgjepa.embed import main as embed_main
from ecgjepa.eval import run as eval_run
from ecgjepa.export import export
from ecgjepa.formats.export import read_export
from ecgjepa.models.backbones import build_encoder
from ecgjepa.models.projection import projection_mlp
from ecgjepa.modules.classifier import ClassifierModule
from ecgjepa.modules.losses import cmsc_loss, cpc_loss, info_nce, negative_cosine, nt_xent, same_group
from ecgjepa.modules.moco import MoCoV3Module
from ecgjepa.train import build_method
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import compose_config, load_group_option
from tests.helpers import METHOD_TEST_OVERRIDES, REPO, SAMPLE

CONTRASTIVE = ("simclr", "byol", "cpc", "moco_v3", "cmsc")


def compose_protocol(name: str):
    return compose_config("eval", [f"protocol={name}"], Path(".")).protocol


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Augmentations


def test_time_out_zeroes_one_stretch_of_the_configured_share() -> None:
    x = torch.ones(64, 12, 250)
    out = TimeOut([0.2, 0.4])(x, generator(0))
    zeros = (out == 0).all(dim=1)  # (B, T): the same stretch in every lead
    assert torch.equal((out == 0).any(dim=1), zeros)
    widths = zeros.sum(dim=1)
    assert widths.min() >= 50 and widths.max() <= 100 and widths.unique().numel() > 10
    for row in zeros:  # one contiguous stretch
        where = torch.nonzero(row).flatten()
        assert where.numel() == 0 or where[-1] - where[0] + 1 == where.numel()


def test_random_resized_crop_stretches_a_share_back_to_full_length() -> None:
    """On a ramp (sample t has value t), each output row rises from the crop's first sample to its last, passes every
    kept sample once, in order, at the source's random positions, and interpolates linearly in between."""
    ramp = torch.arange(250.0).expand(32, 12, 250).contiguous()
    out = RandomResizedCrop([0.5, 1.0])(ramp, generator(1))
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same stretch in every lead
    rows = out[:, 0].double()
    spans = rows[:, -1] - rows[:, 0]  # samples kept - 1
    assert spans.min() >= 124 and spans.max() <= 249 and spans.unique().numel() > 10
    assert (rows.diff(dim=1) >= -1e-4).all() and (rows[:, 0] >= 0).all() and (rows[:, -1] <= 249).all()
    for row, span in zip(rows, spans, strict=True):
        landed = torch.isclose(row, row.round(), atol=1e-4)
        assert torch.equal(row[landed].round().unique(), torch.arange(row[0], row[0] + span + 1).double())
    varies = rows.diff(dim=1).std(dim=1) > 1e-3  # a random local stretch: the slope varies along a row
    assert varies[spans < 249].all() and not varies[spans == 249].any()
    identity = RandomResizedCrop([1.0, 1.0])(ramp, generator(1))
    assert torch.equal(identity, ramp)
    anchors = RandomResizedCrop.anchors(torch.tensor([2, 5, 250]), 250, generator(2))
    assert anchors[0, :3].tolist() == [0, 249, 250] and anchors[1, 0] == 0 and anchors[1, 4] == 249
    assert (anchors[1, 1:4].diff() > 0).all() and (anchors[1, 5:] == 250).all()
    assert torch.equal(anchors[2], torch.arange(250))


def test_channel_resize_and_noise_draw_their_configured_ranges() -> None:
    x = torch.ones(200, 12, 100)
    scaled = ChannelResize([0.5, 2.0])(x, generator(2))
    factors = scaled[..., 0]
    assert torch.equal(scaled, factors[..., None].expand_as(scaled))  # one factor per lead
    assert factors.min() >= 0.5 and factors.max() <= 2.0
    assert abs(factors.log().mean().item()) < 0.05  # log-uniform: centred on 1 in log space
    noisy = GaussianNoise(0.1)(torch.zeros(64, 12, 500), generator(3))
    assert noisy.std().item() == pytest.approx(0.1, rel=0.02)


def test_augmentations_are_a_function_of_the_seed() -> None:
    x = torch.randn(8, 12, 250, generator=generator(4))
    augment = build_augmentation(
        [{"kind": "random_resized_crop", "crop_ratio": [0.5, 1.0]}, {"kind": "time_out", "ratio": [0.2, 0.4]}]
    )
    assert torch.equal(augment(x, generator(5)), augment(x, generator(5)))
    assert not torch.equal(augment(x, generator(5)), augment(x, generator(6)))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "flip"}, r"augmentations\[0\]\.kind: expected one of"),
        ({"kind": "time_out", "ratio": [0.5, 0.2]}, r"time_out\.ratio: expected \[min, max\]"),
        ({"kind": "time_out", "share": [0.1, 0.2]}, r"augmentations\[0\] \(time_out\)"),
    ],
)
def test_a_bad_augmentation_is_named(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_augmentation([spec])


# Losses against hand computations


def embeddings(seed: int, rows: int = 6, width: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(seed)
    return torch.randn(rows, width, generator=g), torch.randn(rows, width, generator=g)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_nt_xent_by_hand() -> None:
    z1, z2 = embeddings(0)
    t, n = 0.5, z1.shape[0]
    views = [unit(v) for v in np.concatenate([z1.numpy(), z2.numpy()]).astype(np.float64)]
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        others = [math.exp(views[i] @ views[k] / t) for k in range(2 * n) if k != i]
        total += -views[i] @ views[partner] / t + math.log(sum(others))
    assert nt_xent(z1, z2, t).item() == pytest.approx(total / (2 * n), rel=1e-5)


def test_info_nce_by_hand() -> None:
    q, k = embeddings(1)
    t = 0.2
    qs, ks = [unit(v) for v in q.double().numpy()], [unit(v) for v in k.double().numpy()]
    terms = [-qs[i] @ ks[i] / t + math.log(sum(math.exp(qs[i] @ kj / t) for kj in ks)) for i in range(len(qs))]
    assert info_nce(q, k, t).item() == pytest.approx(2 * t * np.mean(terms), rel=1e-5)


def test_negative_cosine_by_hand_and_projection_layers() -> None:
    p, z = embeddings(2)
    cosines = [unit(a) @ unit(b) for a, b in zip(p.double().numpy(), z.double().numpy(), strict=True)]
    assert negative_cosine(p, z).item() == pytest.approx(-np.mean(cosines), rel=1e-5)
    simclr, byol = projection_mlp((512, 512, 16), batch_norm=False), projection_mlp((512, 512, 16), batch_norm=True)
    assert [type(m).__name__ for m in simclr] == ["Linear", "ReLU", "Linear"] and simclr[0].bias is not None
    assert [type(m).__name__ for m in byol] == ["Linear", "BatchNorm1d", "ReLU", "Linear"] and byol[0].bias is None
    moco = projection_mlp((8, 16, 16, 4), batch_norm=True, last_batch_norm=True)
    assert not moco[-1].affine and sum(isinstance(m, torch.nn.Linear) for m in moco) == 3


def test_cmsc_loss_by_hand_with_a_shared_patient() -> None:
    z1, z2 = embeddings(3, rows=4)
    t = 0.1
    same = torch.eye(4, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True  # records 0 and 1: one patient
    a, b = [unit(v) for v in z1.double().numpy()], [unit(v) for v in z2.double().numpy()]
    sim = np.array([[ai @ bj / t for bj in b] for ai in a])
    rows = [-(sim[i, j] - math.log(np.exp(sim[i]).sum())) for i, j in zip(*np.nonzero(same.numpy()), strict=True)]
    cols = [-(sim[i, j] - math.log(np.exp(sim[:, j]).sum())) for i, j in zip(*np.nonzero(same.numpy()), strict=True)]
    assert cmsc_loss(z1, z2, same, t).item() == pytest.approx((np.mean(rows) + np.mean(cols)) / 2, rel=1e-5)


def test_cpc_loss_by_hand_as_the_source_loops() -> None:
    """The source's loop over t: the target ``k`` steps ahead against negatives drawn from the other steps of the same
    sequence (the same draws, replayed from the generator), cross-entropy averaged over the batch, summed over t."""
    g = generator(4)
    b, length, width, k, negatives = 3, 20, 4, 5, 6
    predictions, targets = torch.randn(b, length, width, generator=g), torch.randn(b, length, width, generator=g)
    loss, accuracy = cpc_loss(predictions, targets, k, negatives, generator(9))
    drawn = torch.randint(0, length - 1, (b, length - k, negatives), generator=generator(9))
    total, hits = 0.0, 0
    for t in range(length - k):
        step = 0.0
        for i in range(b):
            others = [int(j) + (int(j) >= t + k) for j in drawn[i, t]]
            scores = [float(predictions[i, t] @ targets[i, j]) for j in [t + k, *others]]
            step += -scores[0] + math.log(sum(math.exp(s) for s in scores))
            hits += int(np.argmax(scores) == 0)
        total += step / b
    assert loss.item() == pytest.approx(total, rel=1e-5)
    assert accuracy.item() == pytest.approx(hits / (b * (length - k)))


# Negatives across processes: one process with 2B == two processes with B each


PATIENTS = torch.tensor([10, 11, 12, 13, 14, 11, 16, 17])


def _loss_of(name: str, z: torch.Tensor, rows: slice) -> torch.Tensor:
    half = z.shape[1] // 2
    first, second = z[rows, :half], z[rows, half:]
    if name == "cmsc":  # the positives of the global batch of 8: each recording's two segments, and recordings 1
        same = same_group(PATIENTS[rows])  # and 5 (one on each process) of one patient, gathered as CMSC does
        assert same.shape == (8, 8) and same.sum() == 10 and same[1, 5] and same[5, 1]
        return cmsc_loss(first, second, same, 0.1)
    return nt_xent(first, second, 0.5) if name == "nt_xent" else info_nce(first, second, 0.2)


def _batch_and_weights() -> tuple[torch.Tensor, torch.Tensor]:
    g = generator(11)
    return torch.randn(8, 6, generator=g), torch.randn(6, 10, generator=g)


def _two_process_worker(rank: int, name: str, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        x, w = _batch_and_weights()
        w.requires_grad_(True)
        loss = _loss_of(name, x @ w, slice(4 * rank, 4 * rank + 4))
        loss.backward()
        grad = w.grad.clone()
        dist.all_reduce(grad)  # DDP's gradient: the mean over ranks
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        torch.save({"loss": mean_loss / 2, "grad": grad / 2}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "port"), [("nt_xent", 29631), ("info_nce", 29632), ("cmsc", 29633)])
def test_negatives_gathered_across_two_processes_equal_one_process(name: str, port: int, tmp_path: Path) -> None:
    """SimCLR's, MoCo v3's and CMSC's losses: two gloo processes with 4 samples each give the loss and the
    (DDP-averaged) gradient of one process with all 8."""
    mp.start_processes(_two_process_worker, args=(name, port, str(tmp_path)), nprocs=2, start_method="spawn")
    x, w = _batch_and_weights()
    w.requires_grad_(True)
    single = _loss_of(name, x @ w, slice(0, 8))
    single.backward()
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["loss"].item() == pytest.approx(single.item(), rel=1e-5)
        torch.testing.assert_close(result["grad"], w.grad, rtol=1e-5, atol=1e-6)
    if name != "cmsc":
        local = _loss_of(name, x @ w, slice(0, 4)).item()
        assert local != pytest.approx(single.item(), rel=1e-3)  # without the other process's negatives it differs


# Training on the real sample


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTRASTIVE)
def test_pretraining_on_the_sample_lowers_the_loss(name: str, train_cfg, tmp_path: Path) -> None:
    steps = 30
    cfg = train_cfg(
        f"method={name}",
        *METHOD_TEST_OVERRIDES[name],
        "logger=csv",
        f"trainer.max_steps={steps}",
        f"optim.steps={steps}",
        "optim.learning_rate_warmup_steps=5",
        "data.batch_size=16",
    )
    train_run(cfg)
    losses = pd.read_csv(next(tmp_path.rglob("metrics.csv")))["train/loss"].dropna().to_numpy()
    assert len(losses) == steps
    assert losses[-10:].mean() < losses[:5].mean() - 0.03 * abs(losses[:5].mean()), losses
    config, state, description = read_export(tmp_path / "encoder")
    assert description["pretraining"]["method"] == name
    assert set(state) == set(build_encoder(config).state_dict())  # the encoder alone, every tensor of it


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simclr", "cpc", "moco_v3"])
def test_the_encoder_of_each_backbone_evaluates(name: str, train_cfg, tmp_path: Path, eval_cfg) -> None:
    """xresnet1d50 (SimCLR), fc_lstm (CPC) and the ViT (MoCo v3) pre-trained briefly, then a linear probe (the
    encoder's own input rate and windows, the method in metrics.json), an export with its model card and
    embeddings of real records (a baseline network embeds each record whole)."""
    run_dir = tmp_path / "pretrain"
    train_run(train_cfg(f"method={name}", *METHOD_TEST_OVERRIDES[name], "trainer.max_steps=2", output_dir=run_dir))
    metrics = eval_run(eval_cfg(f"encoder={run_dir}", "protocol.steps=4", output_dir=tmp_path / "eval"))
    assert metrics["method"] == name and 0 <= metrics["test_auroc"] <= 1
    expected_rate = 250 if name == "moco_v3" else 100
    assert read_export(run_dir / "encoder")[0].sampling_frequency == expected_rate
    card = (export(run_dir, tmp_path / "export") / "README.md").read_text()
    network = {"simclr": "xresnet1d50", "cpc": "fc_lstm", "moco_v3": "vit_tiny"}[name]
    assert card.startswith("---\nlicense: ") and f"\n# ECG encoder ({network}, method={name})\n" in card
    embed_main(
        [f"encoder={tmp_path / 'export'}", f"input={SAMPLE / 'records100' / '00000'}", f"output={tmp_path}/z.npy"]
    )
    z = np.load(tmp_path / "z.npy")
    assert z.shape[0] == 500 and np.isfinite(z).all()


def test_methods_refuse_what_they_cannot_train(train_cfg) -> None:
    for overrides, message in (
        (["method=cpc", "model=xresnet1d50"], "method=cpc trains the recurrent network"),
        (["method=simclr", "data.masks=true", "model=vit_tiny"], "method=simclr draws its own views"),
        (["method=jepa", "model=xresnet1d50", "data.masks=false"], "method=jepa trains a ViT"),
        (["method=moco_v3", "model=fc_lstm"], r"unknown model config key\(s\) \['bias'"),  # ST-MEM's ViT settings
    ):
        with pytest.raises(Exception, match=message) as raised:
            train_run(train_cfg(*overrides))
        assert user_error(raised.value) is not None  # reported as one line, exit status 2


def test_byol_targets_follow_the_online_networks_by_ema(tmp_path: Path) -> None:
    """Both target networks move to m x target + (1 - m) x online; the online ones stay as they were."""
    cfg = compose_config("train", ["method=byol"], tmp_path)
    shape = {"channels": list(CANONICAL_LEADS), "channel_size": 250, "sampling_frequency": 100}
    module = build_method(cfg, shape)
    with torch.no_grad():
        for p in [*module.encoder.parameters(), *module.projector.parameters()]:
            p.add_(1.0)
    before = {n: p.clone() for n, p in module.named_parameters()}
    update_targets(module, 0.75)
    for online, target in (("encoder", "target_encoder"), ("projector", "target_projector")):
        for name, p in getattr(module, online).named_parameters():
            moved = getattr(module, target).get_parameter(name)
            expected = 0.75 * before[f"{target}.{name}"] + 0.25 * before[f"{online}.{name}"]
            torch.testing.assert_close(moved, expected)
            assert torch.equal(p, before[f"{online}.{name}"])


def test_cmsc_counts_the_segments_of_one_patient_as_positives(tmp_path: Path) -> None:
    """Crops 0 and 2 come from one patient: their four segments are positives, as CLOCS counts them; without the
    batch's groups every crop is its own."""
    cfg = compose_config("train", ["method=cmsc", "model=vit_tiny"], tmp_path)
    shape = {"channels": list(CANONICAL_LEADS), "channel_size": 2250, "sampling_frequency": 250}
    module = build_method(cfg, shape).eval()
    x = torch.randn(4, 12, 2250, generator=generator(5))
    groups = torch.tensor([7, 3, 7, 9])
    with torch.no_grad():
        z1, z2 = module.embed(x[..., :1125]), module.embed(x[..., 1125:])
        same = torch.eye(4, dtype=torch.bool)
        same[0, 2] = same[2, 0] = True
        patient_aware = module.method_loss((x, groups), 0)[0]
        per_crop = module.method_loss((x,), 0)[0]
    assert patient_aware.item() == pytest.approx(cmsc_loss(z1, z2, same, 0.1).item(), rel=1e-6)
    assert per_crop.item() == pytest.approx(cmsc_loss(z1, z2, torch.eye(4, dtype=torch.bool), 0.1).item(), rel=1e-6)
    assert patient_aware.item() != pytest.approx(per_crop.item(), rel=1e-3)


def test_moco_v3_freezes_only_a_vit_patch_embedding() -> None:
    vit = {**load_group_option("model", "vit_tiny"), "channels": list(CANONICAL_LEADS), "channel_size": 2250}
    lstm = {**load_group_option("model", "fc_lstm"), "channels": list(CANONICAL_LEADS), "channel_size": 1000}
    args = {"projector": {"hidden_dim": 16, "output_dim": 8, "layers": 3}, "predictor": {"hidden_dim": 16}}
    args |= {"temperature": 0.2, "augmentations": [], "seed": 0, "optim": load_group_option("optim", "demo")}
    module = MoCoV3Module(freeze_patch_embed=True, model={**vit, "patch_size": 75}, **args)
    assert not any(p.requires_grad for p in module.encoder.patch_embed.parameters())
    assert all(p.requires_grad for p in module.encoder.blocks.parameters())
    with pytest.raises(ValueError, match="method=moco_v3 trains a ViT"):
        MoCoV3Module(freeze_patch_embed=True, model=lstm, **args)


def test_method_modules_stay_small() -> None:
    for name in ("two_view", "simclr", "byol", "moco", "cmsc", "cpc", "losses"):
        lines = (REPO / "ecgjepa" / "modules" / f"{name}.py").read_text().count("\n")
        assert lines <= 200, f"ecgjepa/modules/{name}.py has {lines} lines"


def test_cpc_fine_tuning_learns_at_discriminative_rates() -> None:
    """protocol=cpc_finetune: head at lr, LSTM at lr x 0.1, per-step layers at lr x 0.01 (the source's factors)."""
    model = {**load_group_option("model", "fc_lstm"), "channels": list(CANONICAL_LEADS), "channel_size": 250}
    protocol = OmegaConf.to_container(compose_protocol("cpc_finetune"), resolve=True)
    module = ClassifierModule(model, protocol, 5, "multilabel", 100)
    groups = module.configure_optimizers()["optimizer"].param_groups
    lr_of = {id(q): group["lr"] for group in groups for q in group["params"]}
    for part, lr in (("encoder.per_step", 1e-6), ("encoder.lstm", 1e-5), ("head", 1e-4)):
        rates = [lr_of[id(q)] for q in module.model.get_submodule(part).parameters()]
        assert rates == pytest.approx([lr] * len(rates)), part
    assert len(lr_of) == sum(1 for _ in module.model.parameters())


@pytest.mark.slow
def test_cpc_head_only_then_fine_tuning(train_cfg, eval_cfg, tmp_path: Path) -> None:
    """The source's two evaluation stages of a CPC encoder: head-only, then the whole network from that run."""
    run_dir, head_dir = tmp_path / "pretrain", tmp_path / "head_only"
    train_run(train_cfg("method=cpc", *METHOD_TEST_OVERRIDES["cpc"], "trainer.max_steps=2", output_dir=run_dir))
    stage = ["protocol.epochs=null", "protocol.steps=4", "protocol.checkpoint_interval=2"]
    head = eval_run(eval_cfg(f"encoder={run_dir}", "protocol=cpc_head_only", *stage, output_dir=head_dir))
    full = eval_run(eval_cfg(f"encoder={head_dir}", "protocol=cpc_finetune", *stage, output_dir=tmp_path / "ft"))
    assert head["method"] == full["method"] == "cpc"
    assert (head["protocol"], full["protocol"]) == ("cpc_head_only", "cpc_finetune")

"""Every config option composes; typos in keys or options fail at start-up with a message naming them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from ecgjepa.eval import run as eval_run
from ecgjepa.train import run as train_run
from ecgjepa.utils.hydra import compose_config
from ecgjepa.utils.paths import conf_dir
from tests.helpers import files_under, pretraining_module

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
PAPER = {
    "vit_xs_ptbxl": (192, ["ptbxl"], 2048, 1),
    "vit_xs_mimic": (192, ["mimic_iv_ecg"], 2048, 1),
    "vit_xs_all": (192, None, 2048, 1),
    "vit_s_ptbxl": (384, ["ptbxl"], 2048, 1),
    "vit_s_mimic": (384, ["mimic_iv_ecg"], 2048, 1),
    "vit_s_all": (384, None, 2048, 1),
    "vit_b_all": (768, None, 512, 2),
}


# The ST-MEM paper's rows, pre-trained on ECG-JEPA's ViT-B data: (method, tokenizer, patch, random lead masking).
METHOD_ROWS = {
    "st_mem_vit_b_all": ("st_mem", "lead_patches", 75, 0.0),
    "mtae_vit_b_all": ("mtae", "patches", 75, 0.0),
    "mtae_rlm_vit_b_all": ("mtae", "patches", 75, 0.5),
    "mlae_vit_b_all": ("mlae", "leads", 2250, 0.0),
}

# The contrastive rows: (method, model, optimizer, learning rate, weight decay, global batch, momentum of the target).
CONTRASTIVE_ROWS = {
    "simclr_xresnet1d50_all": ("simclr", "xresnet1d50", "adam", 2.29e-3, 1e-5, 4096, None),
    "byol_xresnet1d50_all": ("byol", "xresnet1d50", "adam", 2.29e-3, 1e-5, 4096, (0.996, 1.0, "cosine")),
    "cpc_fc_lstm_all": ("cpc", "fc_lstm", "adamw", 1e-4, 1e-3, 32, None),
    "moco_v3_vit_b_all": ("moco_v3", "vit_b", "adamw", 1.5e-4 * 4096 / 256, 0.1, 4096, (0.99, 1.0, "cosine")),
    "cmsc_vit_b_all": ("cmsc", "vit_b", "adamw", 1.5e-4 * 1024 / 256, 0.05, 512, None),
}


def test_every_paper_row_has_an_experiment() -> None:
    assert sorted([*PAPER, *METHOD_ROWS, *CONTRASTIVE_ROWS]) == EXPERIMENTS


@pytest.mark.parametrize("name", sorted(CONTRASTIVE_ROWS))
def test_contrastive_rows_have_their_sources_numbers(name: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"experiment={name}"], tmp_path)
    method, model, optimizer, lr, weight_decay, batch, momentum = CONTRASTIVE_ROWS[name]
    assert cfg.method._target_.rsplit(".", 1)[-1].lower().startswith(method.replace("_", ""))
    assert cfg.model.name == model and cfg.optim.optimizer == optimizer
    assert cfg.optim.learning_rate == pytest.approx(lr)
    assert cfg.optim.weight_decay == cfg.optim.final_weight_decay == weight_decay
    assert cfg.data.global_batch_size == batch and len(cfg.data.sources) == 10 and not cfg.data.masks
    assert cfg.optim.steps == cfg.trainer.max_steps == 100_000
    ema = cfg.callbacks.get("target_momentum")
    if momentum is None:
        assert ema is None
    else:
        assert (ema.encoder_momentum, ema.final_encoder_momentum, ema.schedule, ema.steps) == (*momentum, 100_000)
    rate = {"xresnet1d50": 100, "fc_lstm": 100}.get(model, 250)
    assert cfg.data.input_rate == rate == cfg.model.get("sampling_frequency", rate)
    if method in ("simclr", "byol"):
        assert cfg.method.temperature == 0.5 if method == "simclr" else cfg.method.predictor.hidden_dim == 512
        assert cfg.method.projector.output_dim == 16 and cfg.data.channel_size == 250
        assert [a.kind for a in cfg.method.augmentations] == ["random_resized_crop", "time_out"]
    if method == "cpc":
        assert (cfg.method.steps_ahead, cfg.method.negatives, cfg.data.channel_size) == (12, 128, 1000)
    if method == "moco_v3":
        assert cfg.method.temperature == 0.2 and cfg.method.projector.hidden_dim == 4096


@pytest.mark.parametrize("name", sorted(METHOD_ROWS))
def test_method_rows_have_the_st_mem_papers_numbers(name: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"experiment={name}"], tmp_path)
    method, tokenizer, patch, rlm = METHOD_ROWS[name]
    assert (cfg.method.name, cfg.model.tokenizer, cfg.model.patch_size) == (method, tokenizer, patch)
    assert cfg.method.random_lead_masking == rlm and cfg.method.mask_ratio == 0.75
    assert dict(cfg.method.decoder) == {"dim": 256, "depth": 4, "num_heads": 4, "per_lead": method == "st_mem"}
    assert (cfg.data.input_rate, cfg.data.channel_size, list(cfg.data.band_pass)) == (250, 2250, [0.67, 40.0])
    assert cfg.data.standardise == "ecg" and not cfg.data.masks
    assert cfg.model.dim == 768 and len(cfg.data.sources) == 10
    assert list(cfg.optim.opt_betas) == [0.9, 0.95] and cfg.optim.weight_decay == cfg.optim.final_weight_decay == 0.05
    assert cfg.optim.learning_rate == pytest.approx(1.5e-4 * 512 * 2 / 256)
    assert cfg.optim.steps == cfg.trainer.max_steps == 100_000 and cfg.optim.learning_rate_warmup_steps == 10_000
    assert cfg.callbacks.get("target_momentum") is None


@pytest.mark.parametrize("name", sorted(PAPER))
def test_experiment_has_the_paper_numbers(name: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"experiment={name}"], tmp_path)
    dim, sources, batch, accumulate = PAPER[name]
    assert cfg.model.dim == dim
    assert cfg.data.global_batch_size == batch and cfg.data.batch_size is None
    assert cfg.trainer.accumulate_grad_batches == accumulate
    assert cfg.optim.steps == 100_000 and cfg.trainer.max_steps == 100_000
    assert cfg.optim.learning_rate == 1e-3 and cfg.optim.final_learning_rate == 1e-6
    assert cfg.optim.learning_rate_warmup_steps == 10_000
    assert (cfg.optim.weight_decay, cfg.optim.final_weight_decay) == (0.01, 0.1)
    ema = cfg.callbacks.target_momentum
    assert (ema.encoder_momentum, ema.final_encoder_momentum, ema.steps) == (0.998, 0.9995, 100_000)
    assert cfg.callbacks.model_checkpoint.every_n_train_steps == 10_000
    assert list(cfg.optim.opt_betas) == [0.9, 0.99] and cfg.optim.opt_eps == 1e-6
    if sources is None:
        assert len(cfg.data.sources) == 10 and sum(s.weight for s in cfg.data.sources.values()) == 1.0
        assert cfg.data.sources.mimic_iv_ecg.weight == 0.7
    else:
        assert list(cfg.data.sources) == sources
    if name.startswith("vit_xs"):
        module = pretraining_module(cfg)
        assert sum(p.numel() for p in module.encoder.parameters()) == 3_600_000


def test_every_group_option_composes(tmp_path: Path) -> None:
    for group in ("model", "data", "method", "optim", "trainer", "callbacks", "logger", "debug"):
        for option in sorted(p.stem for p in (conf_dir() / group).glob("*.yaml")):
            cfg = compose_config("train", [f"{group}={option}"], tmp_path)
            assert cfg is not None


def test_unknown_group_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException, match="vit_xxl"):
        compose_config("train", ["model=vit_xxl"], tmp_path)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException, match="learning_rat"):
        compose_config("train", ["optim.learning_rat=1"], tmp_path)


def test_cli_prints_the_paper_configuration_from_any_directory(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ecgjepa.train", "experiment=vit_s_all", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "dim: 384" in out and "global_batch_size: 2048" in out and "steps: 100000" in out


def test_unknown_optim_and_protocol_keys_are_named(train_cfg, eval_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"unknown optim config key\(s\) \['learning_rat'\]; valid keys"):
        train_run(train_cfg("+optim.learning_rat=1", output_dir=tmp_path / "out"))
    with pytest.raises(ValueError, match=r"unknown protocol config key\(s\) \['stepz'\]; valid keys: \[.*'steps'"):
        eval_run(eval_cfg("encoder=vit_tiny", "+protocol.stepz=1", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []

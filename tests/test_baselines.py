"""The supervised baselines (inception1d, xresnet1d50, 4FC+2LSTM+2FC) in the harness: their sizes against the
sources', the rate and crop each declares, protocol=supervised end to end on the bundled sample, predictions
through ecgjepa-predict, and the options a backbone cannot use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import signal as sps

from ecgjepa.cli import user_error
from ecgjepa.core.leads import CANONICAL_LEADS
from ecgjepa.core.records import RecordRef, folder_spec, prepare_record, read_record
from ecgjepa.data.labelled import normalise_record
from ecgjepa.data.ptbxl import load_labels
from ecgjepa.eval import run as eval_run
from ecgjepa.models.backbones import build_encoder, encoder_config
from ecgjepa.modules.classifier import ClassifierModule
from ecgjepa.predict import main as predict_main
from ecgjepa.utils.hydra import load_group_option
from tests.helpers import SAMPLE, short_evaluation

BASELINES = ("inception1d", "xresnet1d50", "fc_lstm")

# Parameters with the source's head for 71 (all statements) and 5 (superdiagnostic) classes, 12 leads. Derived by
# building each network from its source's code (helme/ecg_ptbxl_benchmarking code/models/inception1d.py with
# fastai v1's head; hhi-aml/ecg-selfsupervised models/xresnet1d.py + resnet_simclr.py + eval.py's linear layer, and
# clinical_ts/cpc.py CPCModel with --fc-encoder) and counting; by parts:
# inception1d: blocks 69,632 + 5 x 77,056, shortcuts 1,792 + 16,640, head 42,823 (71) / 34,309 (5);
# xresnet1d50: stem 17,568, stages 166,656 + 216,064 + 324,096 + 162,048, linear 36,423 (71) / 2,565 (5);
# fc_lstm: per-step layers 796,672, LSTM 4,202,496, head 827,463 (71) / 793,605 (5).
SOURCE_PARAMETERS = {
    "inception1d": (516_167, 507_653),
    "xresnet1d50": (922_855, 888_997),
    "fc_lstm": (5_826_631, 5_792_773),
}


def baseline(name: str):
    return build_encoder(
        encoder_config({**load_group_option("model", name), "channels": list(CANONICAL_LEADS), "channel_size": 1000})
    )


@pytest.mark.parametrize("name", BASELINES)
def test_parameter_counts_equal_the_sources(name: str) -> None:
    encoder = baseline(name)
    own = sum(p.numel() for p in encoder.parameters())
    counts = tuple(own + sum(p.numel() for p in encoder.source_head(n).parameters()) for n in (71, 5))
    assert counts == SOURCE_PARAMETERS[name]


@pytest.mark.parametrize(("name", "downsampling"), [("inception1d", 1), ("xresnet1d50", 32), ("fc_lstm", 1)])
def test_time_steps_follow_any_crop_that_is_a_multiple_of_the_downsampling(name: str, downsampling: int) -> None:
    encoder = baseline(name).eval()
    head = encoder.source_head(5).eval()
    for steps in (4, 8, 31):
        tokens = encoder(torch.randn(2, 12, steps * downsampling))
        assert tokens.shape == (2, steps, encoder.embed_dim)
        assert head(tokens).shape == (2, 5)


def test_the_data_pipeline_hands_a_baseline_its_rate_and_crop(sample_data_dir: Path) -> None:
    """On the sample's dump: 100 Hz inputs, 2.5 s training crops, whole 10 s records for evaluation, equal to a
    direct FFT resample of the real record prepared as every dump's."""
    from hydra.utils import instantiate

    from ecgjepa.utils.hydra import compose_config

    cfg = compose_config("eval", [*short_evaluation(sample_data_dir), "encoder=inception1d"], sample_data_dir)
    dm = instantiate(cfg.dataset, input_rate=100, _convert_="all")
    dm.setup()
    x_train, _, _ = dm.datasets["train"][0]
    assert x_train.shape == (12, 250)
    x, _, position = dm.datasets["test"][0]
    assert x.shape == (12, 1000)
    ecg_id = int(dm.ids["test"][position])
    raw = read_record(SAMPLE / "records100" / "00000", RecordRef(ecg_id, f"{ecg_id:05d}_lr"))
    prepared = prepare_record(raw, folder_spec("direct", 10.0))[:5000]
    direct = sps.resample(normalise_record(prepared, dm.mean, dm.std).astype(np.float64), 1000, axis=1)
    np.testing.assert_allclose(x.numpy(), direct, atol=1e-5)
    original = (raw.signal[:1000] - dm.mean) / dm.std  # the 100 Hz record itself, through 500 Hz and back
    error = np.abs(x.numpy() - original.T)  # float16 steps; ringing only beside samples clipped at +-5
    assert np.median(error) < 1e-3 and np.quantile(error, 0.95) < 0.01


@pytest.fixture(scope="module")
def supervised_runs(tmp_path_factory: pytest.TempPathFactory, sample_data_dir: Path) -> dict[str, Path]:
    from ecgjepa.utils.hydra import compose_config

    runs = {}
    for name in BASELINES:
        out = tmp_path_factory.mktemp(name)
        overrides = [
            *short_evaluation(sample_data_dir),
            f"encoder={name}",
            "protocol=supervised",
            "protocol.epochs=null",  # a few steps instead of the recipe's 50 epochs
            "protocol.steps=3",
            "protocol.checkpoint_interval=3",
            "protocol.batch_size=16",
        ]
        eval_run(compose_config("eval", overrides, out))
        runs[name] = out
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", BASELINES)
def test_a_baseline_trains_evaluates_and_predicts(supervised_runs: dict[str, Path], name: str, tmp_path: Path) -> None:
    run = supervised_runs[name]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["protocol"], metrics["encoder_name"]) == ("supervised", f"{name} (random init)")
    assert 0 <= metrics["test_auroc"] <= 1 and metrics["config"]["protocol"]["source_head"]
    predictor = json.loads((run / "predictor.json").read_text())
    assert (predictor["sampling_frequency"], predictor["input_rate"]) == (500, 100)
    # the run's own test records, as WFDB files: ecgjepa-predict reloads the best checkpoint and gives its outputs
    ecg_ids, _, _, folds = load_labels(SAMPLE, "superdiagnostic")
    chosen = ecg_ids[folds == 10][[0, 3]]
    for ecg_id in chosen:
        for suffix in (".hea", ".dat"):
            shutil.copy(SAMPLE / "records100" / "00000" / f"{ecg_id:05d}_lr{suffix}", tmp_path)
    predict_main([f"run={run}", f"input={tmp_path}", f"output={tmp_path / 'p.csv'}"])
    table = pd.read_csv(tmp_path / "p.csv", index_col="record_id")
    expected = np.load(run / "predictions.npz")["test_predictions"][[0, 3]]
    np.testing.assert_allclose(table[predictor["classes"]].to_numpy(), expected, atol=1e-5)


def test_recipes_set_the_sources_numbers(eval_cfg) -> None:
    from ecgjepa.eval import apply_model_and_recipe, choose_encoder

    for name, recipe in (("inception1d", "helme"), ("xresnet1d50", "hhi_aml")):
        cfg = eval_cfg(f"encoder={name}", "protocol=supervised")
        apply_model_and_recipe(cfg, choose_encoder(name))
        p = cfg.protocol
        assert (p.epochs, p.learning_rate, p.decay_all_parameters) == (50, 1e-2, True)
        assert p.batch_size == 32  # short_evaluation's protocol.batch_size=32 wins over the recipe's 128
        assert (p.weight_decay, p.schedule) == ((1e-2, "one_cycle") if recipe == "helme" else (0.1, "warmup_cosine"))
    cfg = eval_cfg("encoder=xresnet1d50", "protocol=supervised", "protocol.recipe=helme", "protocol.epochs=3")
    apply_model_and_recipe(cfg, choose_encoder("xresnet1d50"))
    assert (cfg.protocol.schedule, cfg.protocol.epochs) == ("one_cycle", 3)  # a recipe by name; the command wins


def test_one_cycle_follows_fastais_policy() -> None:
    protocol = {**load_group_option("protocol", "supervised"), **load_group_option("recipe", "helme"), "steps": 100}
    model = {**load_group_option("model", "inception1d"), "channels": list(CANONICAL_LEADS), "channel_size": 1000}
    module = ClassifierModule(model=model, protocol=protocol, num_classes=5, kind="multilabel", sampling_frequency=100)
    optimizer = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs, betas = [], []
    for _ in range(100):
        lrs.append(optimizer.optimizer.param_groups[0]["lr"])
        betas.append(optimizer.optimizer.param_groups[0]["betas"][0])
        optimizer.optimizer.step()
        optimizer.step()
    assert lrs[0] == pytest.approx(4e-4) and max(lrs) == pytest.approx(1e-2, rel=1e-3)
    assert int(np.argmax(lrs)) in (29, 30) and lrs[-1] < 1e-6
    assert betas[0] == pytest.approx(0.95) and min(betas) == pytest.approx(0.85, abs=1e-3)


def test_max_aggregation_takes_the_largest_window_logit() -> None:
    model = {**load_group_option("model", "xresnet1d50"), "channels": list(CANONICAL_LEADS), "channel_size": 1000}
    protocol = load_group_option("protocol", "supervised")
    means = ClassifierModule(model, protocol, 5, "multilabel", 100).eval()
    maxes = ClassifierModule(model, {**protocol, "aggregate": "max"}, 5, "multilabel", 100).eval()
    maxes.load_state_dict(means.state_dict())
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        windows = means.model(x.unfold(-1, 250, 125).permute(0, 2, 1, 3).reshape(-1, 12, 250)).view(2, 7, 5)
        torch.testing.assert_close(means(x), windows.mean(dim=1))
        torch.testing.assert_close(maxes(x), windows.amax(dim=1))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["encoder=inception1d", "protocol=finetune", "protocol.use_register=false"], "protocol.dropout=0.05"),
        (["encoder=vit_tiny", "protocol=supervised"], "protocol.recipe=source: vit_tiny has no recipe of its own"),
        (["encoder=vit_tiny", "protocol=supervised", "protocol.recipe=helme"], "protocol.source_head=true"),
        (["encoder=inception1d", "protocol=supervised", "dataset.record_duration=2.0"], "crop_duration=2.5 s"),
    ],
)
def test_options_a_backbone_cannot_use_are_named(eval_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(Exception, match=message.replace(".", r"\.").replace("(", r"\(")) as raised:
        eval_run(eval_cfg(*overrides))
    assert user_error(raised.value) is not None  # the commands report it as one line, exit status 2


def test_supervised_refuses_a_pretrained_encoder(eval_cfg, tiny_encoder_run: Path) -> None:
    with pytest.raises(ValueError, match="protocol=supervised trains from random initialisation"):
        eval_run(eval_cfg(f"encoder={tiny_encoder_run}", "protocol=supervised", "protocol.recipe=helme"))


@pytest.mark.slow
def test_one_report_holds_a_baseline_row_and_a_jepa_row(
    supervised_runs: dict[str, Path], eval_cfg, tiny_encoder_run: Path, tmp_path: Path
) -> None:
    from ecgjepa.report import main as report_main

    sweep = tmp_path / "sweep"
    shutil.copytree(supervised_runs["inception1d"], sweep / "inception1d")
    eval_run(eval_cfg(f"encoder={tiny_encoder_run}", output_dir=sweep / "jepa"))
    report_main([str(sweep)])
    report = (sweep / "report.md").read_text()
    rows = [line for line in report.splitlines() if " | `" in line]
    assert len(rows) == 2
    assert any(row.startswith("| random init | `inception1d (random init)`") and "supervised" in row for row in rows)
    assert any(row.startswith(f"| jepa | `{tiny_encoder_run.name}`") and "linear" in row for row in rows)
    assert str(tiny_encoder_run) not in report  # a run is named by its folder, not its path


def test_a_baseline_trains_on_labels_of_ones_own(tmp_path: Path) -> None:
    """dataset=csv: PTB-XL ecg_id 1-40 with their sex as the label, xresnet1d50 from random init at 100 Hz."""
    import os

    from ecgjepa.utils.hydra import compose_config
    from tests.helpers import DATA

    table = pd.read_csv(DATA / "ptbxl" / "ptbxl_database.csv.gz", index_col="ecg_id").loc[1:40]
    records = [os.path.relpath(DATA / "ptbxl" / name, tmp_path) for name in table["filename_hr"]]
    labels = tmp_path / "sex.csv"
    pd.DataFrame({"record": records, "sex": table["sex"].map({0: "male", 1: "female"})}).to_csv(labels, index=False)
    overrides = [
        "encoder=xresnet1d50",
        "protocol=supervised",
        "protocol.epochs=null",
        "protocol.steps=2",
        "protocol.checkpoint_interval=2",
        "protocol.batch_size=8",
        "dataset=csv",
        f"dataset.path={labels}",
        "dataset.num_workers=0",
        f"paths.data_dir={tmp_path / 'data'}",
        "trainer=cpu",
        "logger=none",
    ]
    metrics = eval_run(compose_config("eval", overrides, tmp_path / "run"))
    assert (metrics["kind"], metrics["classes"], metrics["encoder_name"]) == (
        "multiclass",
        ["female", "male"],
        "xresnet1d50 (random init)",
    )
    assert json.loads((tmp_path / "run" / "predictor.json").read_text())["input_rate"] == 100


@pytest.mark.parametrize("name", BASELINES)
def test_the_harness_heads_apply_to_a_baseline(name: str) -> None:
    """The attentive probe over the network's time steps and the linear head on their mean, beside its own head."""
    from ecgjepa.models.classifier import Classifier

    x = torch.randn(3, 12, 256)
    for heads in ({"attn_pooling": True}, {"attn_pooling": False}, {"attn_pooling": False, "source_head": True}):
        model = Classifier(baseline(name), 5, use_register=False, frozen=True, **heads).eval()
        assert model(x).shape == (3, 5)
        assert not any(p.requires_grad for p in model.encoder.parameters())

"""Explanations (ecgjepa.modules.attribution, ecgjepa.explain, ``ecgjepa-predict explain=true``) of a real evaluation
run on real PTB-XL records: integrated gradients are complete, change when the head is randomised (the
model-randomisation check of Adebayo et al., 2018), the probe's attention sums to one, and the commands write their
files."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgjepa.core.manifest import input_records
from ecgjepa.eval import run as eval_run
from ecgjepa.explain import DEFAULT_STEPS
from ecgjepa.explain import main as explain_main
from ecgjepa.modules.attribution import integrated_gradients, probe_attention
from ecgjepa.predict import main as predict_main
from ecgjepa.runs import load_run, prepared
from ecgjepa.utils.hydra import compose_config
from tests.helpers import SAMPLE, short_evaluation

RECORDS = ("00001_lr", "00139_lr")  # PTB-XL: a normal ECG (NORM) and an inferior myocardial infarction (IMI)


@pytest.fixture(scope="module")
def linear_run(tiny_encoder_run: Path, sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An attentive-probe run (20 steps) of the tiny pre-trained ViT on the sample."""
    out = tmp_path_factory.mktemp("explain_linear")
    overrides = [*short_evaluation(sample_data_dir), f"encoder={tiny_encoder_run}", "protocol.steps=20"]
    eval_run(compose_config("eval", overrides, out))
    return out


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real PTB-XL records (WFDB, 100 Hz) in a folder of their own."""
    folder = tmp_path_factory.mktemp("records")
    for name in RECORDS:
        for suffix in (".hea", ".dat"):
            shutil.copy(SAMPLE / "records100" / "00000" / f"{name}{suffix}", folder)
    return folder


def first_input(run: Path, folder: Path) -> tuple[object, torch.Tensor]:
    module, predictor = load_run(run)
    refs, base = input_records(folder, None)
    _, x = next(iter(prepared(refs, base, predictor, [])))
    return module, torch.from_numpy(x)[None]


def test_integrated_gradients_are_complete(linear_run: Path, records: Path) -> None:
    """The attributions sum to score - baseline_score within 1 % with the default number of steps."""
    module, x = first_input(linear_run, records)
    for target in range(3):
        result = integrated_gradients(module, x, target, DEFAULT_STEPS)
        difference = result.score - result.baseline_score
        assert result.attributions.shape == (12, 5000)
        assert abs(result.attributions.sum() - difference) <= 0.01 * abs(difference)
        with torch.no_grad():
            assert result.score == pytest.approx(module(x).float()[0, target].item(), rel=1e-5)


def test_randomising_the_head_changes_the_explanation(linear_run: Path, records: Path) -> None:
    module, x = first_input(linear_run, records)
    trained = integrated_gradients(module, x, 0, DEFAULT_STEPS).attributions
    randomised = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in randomised.model.attn_pool.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * p.std().clamp(min=0.02))
    again = integrated_gradients(randomised, x, 0, DEFAULT_STEPS).attributions
    correlation = np.corrcoef(np.abs(trained).ravel(), np.abs(again).ravel())[0, 1]
    assert correlation < 0.9, correlation


def test_the_probes_attention_sums_to_one_over_tokens(linear_run: Path, records: Path) -> None:
    module, x = first_input(linear_run, records)
    result = probe_attention(module, x, 0)
    windows, tokens = result.token_attention.shape
    assert windows == 7 and tokens == 1 + 1250 // 25  # 7 crops of 2.5 s: a register and 50 patches
    np.testing.assert_allclose(result.token_attention.sum(axis=1), 1.0, rtol=1e-5)
    assert (result.attributions >= 0).all() and np.allclose(result.attributions, result.attributions[:1])
    # the first 625 samples lie in the first window only: each holds its token's weight spread over 25 samples
    first = np.repeat(result.token_attention[0, 1:], 25)[:625] / 25
    np.testing.assert_allclose(result.attributions[0, :625], first, rtol=1e-5)


def test_explain_writes_a_figure_and_the_numbers_per_record(linear_run: Path, records: Path, tmp_path: Path) -> None:
    explain_main([f"run={linear_run}", f"input={records}", f"output={tmp_path / 'ig'}", "steps=16"])
    explain_main(
        [f"run={linear_run}", f"input={records}", f"output={tmp_path / 'att'}", "method=attention", "class=MI"]
    )
    for name in RECORDS:
        assert (tmp_path / "ig" / f"{name}.png").stat().st_size > 10_000
        ig = np.load(tmp_path / "ig" / f"{name}.npz")
        att = np.load(tmp_path / "att" / f"{name}.npz")
        assert ig["attributions"].shape == att["attributions"].shape == (12, 5000)
        assert str(att["class_name"]) == "MI" and str(att["method"]) == "attention"
        assert float(ig["baseline_score"]) != float(ig["score"])


def test_explain_names_a_class_the_run_does_not_have(linear_run: Path, records: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        explain_main([f"run={linear_run}", f"input={records}", f"output={tmp_path}", "class=AFIB"])
    assert raised.value.code == 2


def test_predict_explains_next_to_its_csv(linear_run: Path, records: Path, tmp_path: Path) -> None:
    predict_main([f"run={linear_run}", f"input={records}", f"output={tmp_path / 'p.csv'}", "explain=true"])
    folder = tmp_path / "p_explanations"
    assert sorted(p.name for p in folder.glob("*.npz")) == [f"{name}.npz" for name in RECORDS]

"""``ecgjepa-report`` on a fake sweep: paper-format entries, pooled bootstrap, written files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ecgjepa.metrics import bootstrap_auroc
from ecgjepa.report import main, paper_format

CLASSES = ["CD", "HYP", "MI", "NORM", "STTC"]


def save_predictions(run_dir: Path, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> None:
    """``predictions.npz`` as ``ecgjepa.eval`` writes it: (targets, predictions) of the validation and test folds."""
    np.savez(
        run_dir / "predictions.npz",
        val_targets=val[0],
        val_predictions=val[1],
        test_targets=test[0],
        test_predictions=test[1],
    )


def write_run(run_dir: Path, seed: int, protocol: str, test_targets: np.ndarray) -> float:
    """One evaluation run as ``ecgjepa.eval`` writes it; returns its test AUROC."""
    rng = np.random.default_rng(100 + seed)
    val_targets = (rng.random((80, len(CLASSES))) < 0.3).astype(np.float32)
    val_targets[: len(CLASSES)] = np.eye(len(CLASSES))
    val_predictions = np.clip(0.3 * val_targets + rng.random(val_targets.shape), 0, 1)
    test_predictions = np.clip(0.3 * test_targets + rng.random(test_targets.shape), 0, 1)
    test_auroc = roc_auc_score(test_targets, test_predictions, average="macro")
    run_dir.mkdir(parents=True)
    save_predictions(run_dir, (val_targets, val_predictions), (test_targets, test_predictions))
    per_class = roc_auc_score(test_targets, test_predictions, average=None)
    metrics = {
        "task": "superdiagnostic",
        "protocol": protocol,
        "encoder": "vit_xs_all",
        "seed": seed,
        "val_auroc": roc_auc_score(val_targets, val_predictions, average="macro"),
        "test_auroc": test_auroc,
        "classes": CLASSES,
        "per_class": [
            {"class": c, "auroc": float(a), "support": int(s)}
            for c, a, s in zip(CLASSES, per_class, test_targets.sum(axis=0), strict=True)
        ],
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return test_auroc


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Path, list[float]]:
    rng = np.random.default_rng(0)
    test_targets = (rng.random((120, len(CLASSES))) < 0.3).astype(np.float32)
    test_targets[: len(CLASSES)] = np.eye(len(CLASSES))
    aucs = [write_run(tmp_path / "linear" / f"seed{seed}", seed, "linear", test_targets) for seed in range(3)]
    write_run(tmp_path / "finetune" / "seed0", 0, "finetune", test_targets)
    (tmp_path / "finetune" / "crashed").mkdir()  # no metrics.json: not a run
    return tmp_path, aucs


def test_paper_format() -> None:
    assert paper_format(0.9312, 0.0021) == "0.931(02)"
    assert paper_format(0.9312, 0.0123) == "0.931(12)"
    assert paper_format(0.945, 0.0) == "0.945(00)"


def test_report_on_fake_sweep(sweep: tuple[Path, list[float]], capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir, aucs = sweep
    main([str(sweep_dir), "--n-bootstrap", "50"])
    printed = capsys.readouterr().out

    mean, std = np.mean(aucs), np.std(aucs)  # ddof 0 like the original's summary
    expected = f"{mean:.3f}({int(round(std * 1000)):02d})"
    table = (sweep_dir / "report.md").read_text()
    assert table in printed
    linear_row = next(line for line in table.splitlines() if "| linear |" in line)
    assert "| superdiagnostic | linear | 3 | " + expected + " |" in linear_row
    assert "| finetune | 1 |" in table

    for name in ("report.md", "report.csv", "report.png"):
        assert (sweep_dir / name).stat().st_size > 0
    assert (sweep_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    csv = pd.read_csv(sweep_dir / "report.csv").set_index("protocol")
    assert csv.loc["linear", "runs"] == 3 and csv.loc["finetune", "runs"] == 1
    assert csv.loc["linear", "test_auroc_mean"] == pytest.approx(mean, abs=1e-6)
    assert csv.loc["linear", "test_auroc_std"] == pytest.approx(std, abs=1e-6)

    pooled = []
    for seed in range(3):
        with np.load(sweep_dir / "linear" / f"seed{seed}" / "predictions.npz") as saved:
            pooled.append(bootstrap_auroc(saved["test_targets"], saved["test_predictions"], n=50, seed=seed)["scores"])
    scores = np.concatenate(pooled)
    assert csv.loc["linear", "bootstrap_low"] == pytest.approx(np.percentile(scores, 2.5), abs=1e-6)
    assert csv.loc["linear", "bootstrap_high"] == pytest.approx(np.percentile(scores, 97.5), abs=1e-6)
    assert f"[{np.percentile(scores, 2.5):.3f}, {np.percentile(scores, 97.5):.3f}]" in linear_row


def test_report_without_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "run").mkdir(parents=True)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty")])
    assert "no evaluation run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "sweep directory not found" in capsys.readouterr().err


def test_report_refuses_different_test_sets(sweep: tuple[Path, list[float]], capsys) -> None:
    sweep_dir, _ = sweep
    path = sweep_dir / "linear" / "seed1" / "predictions.npz"
    with np.load(path) as saved:
        arrays = dict(saved)
    arrays["test_targets"] = arrays["test_targets"][::-1].copy()
    np.savez(path, **arrays)
    with pytest.raises(SystemExit):
        main([str(sweep_dir), "--n-bootstrap", "5"])
    assert "different test targets" in capsys.readouterr().err


def test_a_label_efficiency_sweep_is_grouped_by_fraction(sweep: tuple[Path, list[float]]) -> None:
    sweep_dir, _ = sweep
    for seed in range(2):  # the same linear protocol trained on a tenth of the training folds
        run = sweep_dir / "fraction" / f"seed{seed}"
        write_run(run, seed, "linear", np.load(sweep_dir / "linear" / "seed0" / "predictions.npz")["test_targets"])
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "train_fraction": 0.1}))
    main([str(sweep_dir), "--n-bootstrap", "5"])
    table = pd.read_csv(sweep_dir / "report.csv")
    linear = table[table["protocol"] == "linear"].set_index("train_fraction")
    assert linear["runs"].to_dict() == {0.1: 2, 1.0: 3}
    assert "| macro AUROC | 0.1 |" in (sweep_dir / "report.md").read_text()


def test_regression_runs_report_r2(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    targets = rng.normal(60, 15, (50, 1))
    for seed in range(2):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        values = targets + rng.normal(0, 5, targets.shape)
        r2 = 1 - np.square(targets - values).sum() / np.square(targets - targets.mean()).sum()
        save_predictions(run, (targets, values), (targets, values))
        metrics = {"task": "age", "protocol": "linear", "encoder": "e", "seed": seed, "classes": ["age"]}
        metrics |= {"metric": "r2", "val_r2": r2, "test_r2": r2, "kind": "regression"}
        (run / "metrics.json").write_text(json.dumps(metrics))
    main([str(tmp_path), "--n-bootstrap", "20"])
    table = pd.read_csv(tmp_path / "report.csv")
    assert table.loc[0, "metric"] == "r2" and 0.8 < table.loc[0, "test_r2_mean"] < 1
    assert table.loc[0, "bootstrap_low"] < table.loc[0, "test_r2_mean"] < table.loc[0, "bootstrap_high"] + 0.05
    assert "| R² |" in (tmp_path / "report.md").read_text()


def test_rows_are_grouped_by_method(tmp_path: Path) -> None:
    """Runs of ST-MEM and of JEPA encoders form separate rows, ordered by method; a run that names no method (written
    before methods were a config group) is JEPA's."""
    rng = np.random.default_rng(0)
    test_targets = (rng.random((120, len(CLASSES))) < 0.3).astype(np.float32)
    test_targets[: len(CLASSES)] = np.eye(len(CLASSES))
    for method in ("st_mem", "jepa", None):
        for seed in range(2):
            run_dir = tmp_path / str(method) / f"seed{seed}"
            write_run(run_dir, seed, "linear", test_targets)
            if method is not None:
                metrics = json.loads((run_dir / "metrics.json").read_text())
                metrics.update(method=method, encoder_name=f"{method}_run")
                (run_dir / "metrics.json").write_text(json.dumps(metrics))
    main([str(tmp_path), "--n-bootstrap", "10"])
    table = pd.read_csv(tmp_path / "report.csv")
    assert list(zip(table["method"], table["encoder"], table["runs"], strict=True)) == [
        ("jepa", "jepa_run", 2),
        ("jepa", "vit_xs_all", 2),
        ("st_mem", "st_mem_run", 2),
    ]
    assert "| st_mem | `st_mem_run` | superdiagnostic | linear | 2 |" in (tmp_path / "report.md").read_text()

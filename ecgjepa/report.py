"""``ecgjepa-report <sweep dir>``: the paper's table entries from a sweep of evaluation runs
(as ECG-JEPA scripts/bootstrap_test_set.py reports them).

Every directory below the sweep dir holding a ``metrics.json`` (and its ``predictions.npz``) is one run.
Runs are grouped by (pre-training method, encoder, task, protocol, train fraction), so the rows of one method
stand together; a group's entry is the mean test score over its
runs (macro AUC; R² for regression) with the std (ddof 0) in thousandths, as in the published tables, plus a
95 % interval pooled over the bootstrap scores of every run's saved test predictions (as
``scripts/bootstrap_test_set.py``).
Writes ``report.md``, ``report.csv`` and ``report.png`` into the sweep dir.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ecgjepa.cli import command
from ecgjepa.core.files import write_text_atomic
from ecgjepa.metrics import bootstrap_auroc, bootstrap_r2
from ecgjepa.plots import save_figure

METRICS_KEYS = ("task", "protocol", "encoder", "seed", "classes")
PREDICTION_KEYS = ("test_targets", "test_predictions")
GROUP_KEYS = ("method", "encoder", "task", "protocol", "train_fraction", "metric")
BOOTSTRAPS = {"auroc": bootstrap_auroc, "r2": bootstrap_r2}


@dataclass(frozen=True)
class Run:
    path: Path
    encoder: str
    task: str
    protocol: str
    seed: int | None
    val_score: float
    test_score: float
    metric: str = "auroc"
    train_fraction: float = 1.0
    method: str = "jepa"


def paper_format(mean: float, std: float) -> str:
    """``0.931(02)``: mean to 3 decimals, std in thousandths (rounded) with at least two digits."""
    return f"{mean:.3f}({round(std * 1000):02d})"


def load_run(metrics_path: Path) -> Run:
    metrics = json.loads(metrics_path.read_text())
    metric = str(metrics.get("metric", "auroc"))
    if metric not in BOOTSTRAPS:
        raise ValueError(f"{metrics_path}: unknown metric {metric!r}; expected one of {sorted(BOOTSTRAPS)}")
    missing = [key for key in (*METRICS_KEYS, f"val_{metric}", f"test_{metric}") if key not in metrics]
    if missing:
        raise ValueError(f"{metrics_path} lacks the key(s) {', '.join(map(repr, missing))}")
    return Run(
        path=metrics_path.parent,
        encoder=str(metrics.get("encoder_name", metrics["encoder"])),
        task=str(metrics["task"]),
        protocol=str(metrics["protocol"]),
        seed=None if metrics["seed"] is None else int(metrics["seed"]),
        val_score=float(metrics[f"val_{metric}"]),
        test_score=float(metrics[f"test_{metric}"]),
        metric=metric,
        train_fraction=float(metrics.get("train_fraction", 1.0)),
        method=str(metrics.get("method", legacy_method(metrics))),
    )


def legacy_method(metrics: dict) -> str:
    """The method of a run written before ``metrics.json`` named it: a random-init model, or else a JEPA encoder."""
    return "random init" if str(metrics.get("encoder_name", "")).endswith("(random init)") else "jepa"


def find_runs(sweep_dir: Path) -> list[Run]:
    """Every run below ``sweep_dir`` (directories without ``metrics.json`` are not runs)."""
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    runs = [load_run(path) for path in sorted(sweep_dir.rglob("metrics.json"))]
    if not runs:
        raise FileNotFoundError(f"no evaluation run (a directory with metrics.json) below {sweep_dir}")
    return runs


def _test_predictions(run: Run) -> tuple[np.ndarray, np.ndarray]:
    path = run.path / "predictions.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{run.path} has metrics.json but no predictions.npz")
    with np.load(path) as saved:
        missing = [key for key in PREDICTION_KEYS if key not in saved]
        if missing:
            raise ValueError(f"{path} lacks the array(s) {', '.join(map(repr, missing))}")
        return saved["test_targets"], saved["test_predictions"]


def pooled_bootstrap(runs: list[Run], n_bootstrap: int) -> np.ndarray:
    """Bootstrap scores of every run's test predictions (seeded by the run's seed), concatenated.

    A run without a seed uses its position in the group. Pooling only makes sense on one test set, so
    all runs must share identical test targets.
    """
    scores = []
    reference = None
    for position, run in enumerate(runs):
        targets, probs = _test_predictions(run)
        if reference is None:
            reference = (run, targets)
        elif not np.array_equal(targets, reference[1]):
            raise ValueError(f"{run.path} and {reference[0].path} have different test targets")
        seed = position if run.seed is None else run.seed
        scores.append(BOOTSTRAPS[run.metric](targets, probs, n=n_bootstrap, seed=seed)["scores"])
    return np.concatenate(scores)


def _seed_order(run: Run) -> tuple[bool, int, str]:
    return run.seed is None, run.seed or 0, str(run.path)


Group = tuple[str, str, str, str, float, str]


def group_runs(runs: list[Run]) -> dict[Group, list[Run]]:
    """Runs keyed by (method, encoder, task, protocol, train fraction, metric), keys sorted, runs ordered by seed."""
    groups: dict[Group, list[Run]] = {}
    for run in runs:
        key = (run.method, run.encoder, run.task, run.protocol, run.train_fraction, run.metric)
        groups.setdefault(key, []).append(run)
    return {key: sorted(groups[key], key=_seed_order) for key in sorted(groups)}


def summarise(groups: dict[Group, list[Run]], n_bootstrap: int = 100) -> pd.DataFrame:
    """One row per group: paper-format entries, raw means / stds (columns named by the metric, e.g.
    ``test_auroc_mean``) and the pooled bootstrap interval."""
    rows = []
    for key, members in groups.items():
        metric = key[-1]
        test = np.array([run.test_score for run in members])
        val = np.array([run.val_score for run in members])
        scores = pooled_bootstrap(members, n_bootstrap)
        rows.append(
            {
                **dict(zip(GROUP_KEYS, key, strict=True)),
                "runs": len(members),
                "seeds": " ".join("-" if run.seed is None else str(run.seed) for run in members),
                "test": paper_format(test.mean(), test.std()),
                "val": paper_format(val.mean(), val.std()),
                f"test_{metric}_mean": test.mean(),
                f"test_{metric}_std": test.std(),
                f"val_{metric}_mean": val.mean(),
                f"val_{metric}_std": val.std(),
                "bootstrap_mean": scores.mean(),
                "bootstrap_low": np.percentile(scores, 2.5),
                "bootstrap_high": np.percentile(scores, 97.5),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    header = [
        "method",
        "encoder",
        "task",
        "protocol",
        "runs",
        "test",
        "val",
        "test 95% CI (pooled bootstrap)",
        "metric",
        "train fraction",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        cells = [
            row.method,
            f"`{row.encoder}`",
            row.task,
            row.protocol,
            str(row.runs),
            row.test,
            row.val,
            f"[{row.bootstrap_low:.3f}, {row.bootstrap_high:.3f}]",
            "macro AUROC" if row.metric == "auroc" else "R²",
            f"{row.train_fraction:g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(groups: dict[Group, list[Run]], path: Path) -> None:
    """Test score of every run (points, labelled by seed) and each group's mean ± std (bar)."""
    fig = Figure(figsize=(max(5.0, 1.8 * len(groups)), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for x, members in enumerate(groups.values()):
        test = np.array([run.test_score for run in members])
        offsets = np.linspace(-0.2, 0.2, len(members)) if len(members) > 1 else np.zeros(1)
        ax.scatter(x + offsets, test, color="tab:blue", s=18, zorder=3)
        for offset, run in zip(offsets, members, strict=True):
            seed = "-" if run.seed is None else str(run.seed)
            ax.annotate(seed, (x + offset, run.test_score), xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.errorbar(x, test.mean(), yerr=test.std(), fmt="_", color="black", markersize=24, capsize=6, zorder=4)
    labels = ["\n".join([*key[:4], f"fraction {key[4]:g}"] if key[4] < 1 else key[:4]) for key in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel("test score (macro AUROC; R² for regression)")
    ax.set_title("Test score per seed (points) and mean ± std (bars)")
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path, dpi=120)


def build_report(sweep_dir: str | Path, n_bootstrap: int = 100) -> str:
    """Write ``report.md``, ``report.csv`` and ``report.png`` into ``sweep_dir``; returns the table."""
    sweep_dir = Path(sweep_dir)
    groups = group_runs(find_runs(sweep_dir))
    table = summarise(groups, n_bootstrap)
    markdown = to_markdown(table)
    write_text_atomic(sweep_dir / "report.md", markdown)
    write_text_atomic(sweep_dir / "report.csv", table.to_csv(index=False, float_format="%.6f"))
    plot(groups, sweep_dir / "report.png")
    return markdown


@command("ecgjepa-report")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ecgjepa-report",
        description="Summarise a sweep of evaluation runs as the paper's table entries.",
    )
    parser.add_argument("sweep_dir", type=Path, help="directory searched recursively for run directories")
    parser.add_argument("--n-bootstrap", type=int, default=100, help="bootstrap resamples per run (default 100)")
    args = parser.parse_args(argv)
    markdown = build_report(args.sweep_dir, args.n_bootstrap)
    print(markdown, end="")
    print(f"wrote report.md, report.csv and report.png in {args.sweep_dir}")


if __name__ == "__main__":
    main()

"""PNG figures written into run directories (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.ndimage import uniform_filter1d  # noqa: E402
from torchmetrics.functional.classification import binary_roc  # noqa: E402

from ecgjepa.core.files import atomic_write  # noqa: E402

PRETRAIN_PANELS = (
    ("train/loss", "loss (the method's)"),
    ("lr-AdamW", "learning rate"),
    ("train/weight_decay", "weight decay"),
    ("train/momentum", "EMA momentum"),
    ("train/target_std", "target std across batch (collapse if -> 0)"),
    ("train/encoder_std", "encoder output std across batch (collapse if -> 0)"),
    ("probe/val_auroc", "online probe: val macro AUROC"),
)


def save_figure(fig: Figure, out: Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``out`` (its suffix names the format) atomically and close it."""
    with atomic_write(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(out).suffix.lstrip("."))
    plt.close(fig)
    return Path(out)


def plot_pretrain_curves(metrics_csv: Path, out: Path) -> Path | None:
    """One panel per logged pre-training curve present in a Lightning ``metrics.csv``."""
    if not metrics_csv.is_file():
        return None
    df = pd.read_csv(metrics_csv)
    lr_columns = sorted(c for c in df.columns if c.startswith("lr-"))
    if lr_columns:  # LearningRateMonitor names it lr-<optimizer>[/pg<group>]
        df["lr-AdamW"] = df[lr_columns[0]]
    panels = [(key, title) for key, title in PRETRAIN_PANELS if key in df.columns and df[key].notna().any()]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        rows = df[["step", key]].dropna()
        ax.plot(rows["step"], rows[key], marker="o" if len(rows) < 20 else None, lw=1.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    return out


def plot_roc_curves(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str], out: Path, k: int = 5) -> Path:
    """ROC curves of the ``k`` classes with the most positives (the five superclasses for those tasks)."""
    support = targets.sum(axis=0)
    order = np.argsort(-support)[:k]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for c in order:
        if 0 < support[c] < len(targets):
            preds, target = torch.as_tensor(probs[:, c], dtype=torch.float64), torch.as_tensor(targets[:, c] > 0)
            fpr, tpr, _ = (t.numpy() for t in binary_roc(preds, target.long()))
            ax.plot(fpr, tpr, lw=1.4, label=f"{classes[c]} (n={int(support[c])})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("test ROC curves", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    return out


def plot_per_class_auroc(classes: Sequence[str], aurocs: Sequence[float], support: Sequence[int], out: Path) -> Path:
    """Horizontal bars of test AUROC per class, labelled with the SCP code and its test support."""
    order = np.argsort(aurocs)
    height = max(2.5, 0.22 * len(classes) + 1)
    fig, ax = plt.subplots(figsize=(6, height))
    labels = [f"{classes[i]} (n={support[i]})" for i in order]
    values = np.nan_to_num(np.asarray(aurocs, dtype=float)[order], nan=0.0)
    ax.barh(labels, values, color="tab:blue")
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("test AUROC")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    return out


def plot_regression(targets: np.ndarray, values: np.ndarray, name: str, out: Path) -> Path:
    """Predicted against true values of the test records, with the identity line."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(targets, values, s=10, alpha=0.6)
    low, high = float(min(targets.min(), values.min())), float(max(targets.max(), values.max()))
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    ax.set_xlabel(f"true {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.set_title("test predictions", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    return out


def plot_explanation(
    signal: np.ndarray, attributions: np.ndarray, leads: Sequence[str], fs: float, title: str, out: Path
) -> Path:
    """Each lead's trace (leads, samples) over a heat map of its attributions in time, summed over 50 ms so that a
    wave's share shows rather than single samples: red pushed the score up, blue down, one colour scale for all
    leads (the 99.5th percentile of the magnitudes; larger values saturate)."""
    n = len(leads)
    fig, axes = plt.subplots(n, 1, figsize=(12, 1.0 * n + 0.8), sharex=True)
    axes = np.atleast_1d(axes)
    width = max(1, round(0.05 * fs))
    attributions = uniform_filter1d(np.asarray(attributions, dtype=np.float64), width, axis=-1, mode="constant") * width
    scale = float(np.percentile(np.abs(attributions), 99.5)) or 1.0
    seconds = signal.shape[-1] / fs
    for ax, lead, trace, heat in zip(axes, leads, signal, attributions, strict=True):
        low, high = float(trace.min()), float(trace.max())
        pad = 0.1 * (high - low) or 1.0
        ax.imshow(
            heat[None],
            aspect="auto",
            cmap="RdBu_r",
            vmin=-scale,
            vmax=scale,
            extent=(0.0, seconds, low - pad, high + pad),
            alpha=0.7,
            interpolation="nearest",
        )
        ax.plot(np.arange(len(trace)) / fs, trace, color="black", linewidth=0.6)
        ax.set_ylabel(lead, rotation=0, ha="right", va="center")
        ax.set_yticks([])
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)

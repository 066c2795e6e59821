"""PTB-XL benchmark labels and folds (ECG-JEPA data/datasets/ptb_xl.py).

Same semantics as helme/ecg_ptbxl_benchmarking ``compute_label_aggregations`` + ``select_data`` with
``min_samples = 0``: every ``scp_codes`` key counts whatever its likelihood (0.0 included), classes are
sorted alphabetically, records whose label set is empty are dropped before splitting. ``st_mem`` is the
superdiagnostic task restricted to records with exactly one superclass (ST-MEM's single-label subset).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm", "st_mem")

DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
DATABASE_COLUMNS = ("ecg_id", "scp_codes", "strat_fold")
STATEMENT_COLUMNS = ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")

# task -> (scp_statements flag a code must carry, column giving its label; None: the code itself)
_AGGREGATION = {
    "diagnostic": ("diagnostic", None),
    "subdiagnostic": ("diagnostic", "diagnostic_subclass"),
    "superdiagnostic": ("diagnostic", "diagnostic_class"),
    "st_mem": ("diagnostic", "diagnostic_class"),
    "form": ("form", None),
    "rhythm": ("rhythm", None),
}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown PTB-XL task {task!r}; expected one of {', '.join(TASKS)}")


def is_multiclass(task: str) -> bool:
    """Only ``st_mem`` is single-label (softmax cross-entropy); every other task is multi-label."""
    _check_task(task)
    return task == "st_mem"


def _read_csv(path: Path, columns: tuple[str, ...], **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"PTB-XL metadata file not found: {path}")
    table = pd.read_csv(path, **kwargs)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the required column(s) {', '.join(map(repr, missing))}")
    return table


def _parse_codes(text: str, ecg_id: int, path: Path) -> dict[str, float]:
    try:
        codes = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"{path}: ecg_id {ecg_id} has an unreadable scp_codes entry {text!r}") from err
    if not isinstance(codes, dict):
        raise ValueError(f"{path}: ecg_id {ecg_id} has scp_codes {text!r}, expected a dict")
    return codes


def _code_to_label(statements: pd.DataFrame, task: str) -> dict[str, str] | None:
    """Statement code -> the label it contributes to ``task``; None for ``all`` (every key is a label)."""
    if task == "all":
        return None
    flag, label_column = _AGGREGATION[task]
    selected = statements[statements[flag] == 1]
    labels = selected.index.to_series() if label_column is None else selected[label_column]
    return {str(code): str(label) for code, label in labels.items() if pd.notna(label)}


def load_labels(metadata_dir: str | Path, task: str) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Benchmark labels of ``task``: ``(ecg_ids, classes, targets, folds)``, rows ordered by ecg_id.

    ``targets`` is a float32 multi-hot ``(N, C)`` matrix over the sorted ``classes`` (one-hot for
    ``st_mem``); records without any label for the task are not returned.
    """
    _check_task(task)
    metadata_dir = Path(metadata_dir)
    if not metadata_dir.is_dir():
        raise FileNotFoundError(f"PTB-XL metadata directory not found: {metadata_dir}")
    database_path = metadata_dir / DATABASE
    database = _read_csv(database_path, DATABASE_COLUMNS, usecols=lambda c: c in DATABASE_COLUMNS)
    database = database.sort_values("ecg_id", kind="stable")
    statements = _read_csv(metadata_dir / STATEMENTS, STATEMENT_COLUMNS, index_col=0)

    mapping = _code_to_label(statements, task)
    label_sets = []
    for ecg_id, text in zip(database["ecg_id"], database["scp_codes"], strict=True):
        codes = _parse_codes(text, ecg_id, database_path)
        if mapping is None:
            label_sets.append(set(codes))
        else:
            label_sets.append({mapping[code] for code in codes if code in mapping})

    sizes = np.array([len(labels) for labels in label_sets])
    keep = sizes == 1 if task == "st_mem" else sizes > 0
    kept_sets = [labels for labels, k in zip(label_sets, keep, strict=True) if k]
    classes = sorted(set().union(*kept_sets))
    column_of = {name: i for i, name in enumerate(classes)}
    targets = np.zeros((len(kept_sets), len(classes)), dtype=np.float32)
    rows = np.repeat(np.arange(len(kept_sets)), sizes[keep])
    cols = [column_of[name] for labels in kept_sets for name in labels]
    targets[rows, cols] = 1.0

    ecg_ids = database["ecg_id"].to_numpy(dtype=np.int64)[keep]
    folds = database["strat_fold"].to_numpy(dtype=np.int64)[keep]
    return ecg_ids, classes, targets, folds

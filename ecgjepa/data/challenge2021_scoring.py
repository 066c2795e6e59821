"""The PhysioNet/CinC Challenge 2021 metric over its 26 scored classes (SNOMED CT codes, equivalent codes merged).

For recordings k with binary labels a_k and binary outputs o_k over the classes, n_k is the number of classes
positive in a_k or o_k (at least 1), the confusion matrix is A_ij = sum_k a_k[i] o_k[j] / n_k, and a set of
outputs scores sum_ij W_ij A_ij with the reward matrix W. The metric rescales that score so that the labels
themselves score 1 and "sinus rhythm for every recording" scores 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = Path(__file__).with_name("challenge2021")
SINUS_RHYTHM = "426783006"


@dataclass(frozen=True)
class ChallengeScoring:
    """The scored classes (a class of equivalent codes is named ``a|b``) and their reward matrix."""

    classes: tuple[str, ...]
    weights: np.ndarray

    @classmethod
    def load(cls, weights_csv: str | Path = TABLES / "weights.csv") -> ChallengeScoring:
        table = pd.read_csv(weights_csv, index_col=0, dtype=str)
        classes = tuple(str(c).strip() for c in table.columns)
        if tuple(str(i).strip() for i in table.index) != classes:
            raise ValueError(f"{weights_csv}: the rows and columns must name the same classes in the same order")
        return cls(classes, table.to_numpy(dtype=np.float64))

    @property
    def class_of_code(self) -> dict[str, int]:
        """Each SNOMED CT code -> the index of its class (both codes of an equivalent pair map to one class)."""
        return {code: i for i, name in enumerate(self.classes) for code in name.split("|")}

    def encode(self, codes_per_record: Iterable[Iterable[str]]) -> np.ndarray:
        """Multi-hot (records, classes) labels of the scored codes; other codes are ignored."""
        index = self.class_of_code
        rows = [[index[c] for c in codes if c in index] for codes in codes_per_record]
        labels = np.zeros((len(rows), len(self.classes)), dtype=bool)
        for k, columns in enumerate(rows):
            labels[k, columns] = True
        return labels

    def score(self, labels: np.ndarray, outputs: np.ndarray) -> float:
        """The Challenge metric of binary ``outputs`` against binary ``labels``, both (records, classes)."""
        labels, outputs = np.asarray(labels, dtype=bool), np.asarray(outputs, dtype=bool)
        if labels.shape != outputs.shape or labels.ndim != 2 or labels.shape[1] != len(self.classes):
            raise ValueError(
                f"labels {labels.shape} and outputs {outputs.shape} must both be (records, {len(self.classes)})"
            )
        inactive = np.zeros_like(labels)
        inactive[:, self.class_of_code[SINUS_RHYTHM]] = True
        observed, correct, baseline = (self._reward(labels, o) for o in (outputs, labels, inactive))
        if correct == baseline:
            return float("nan")
        return float((observed - baseline) / (correct - baseline))

    def _reward(self, labels: np.ndarray, outputs: np.ndarray) -> float:
        normaliser = np.maximum((labels | outputs).sum(axis=1), 1).astype(np.float64)
        confusion = (labels.T.astype(np.float64) / normaliser) @ outputs.astype(np.float64)
        return float((self.weights * confusion).sum())

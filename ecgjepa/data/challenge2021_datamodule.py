"""The PhysioNet/CinC Challenge 2021 sources as a labelled benchmark: the 26 scored classes of each record's
header diagnoses (``labels.csv`` of the dumps, SNOMED CT codes; equivalent codes are one class), folds from the
record id (:func:`~ecgjepa.data.splits.record_fold`), and the Challenge metric beside macro AUROC.

Every record of the listed dumps is used, also those without a scored diagnosis (all-negative targets), as the
Challenge scores them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgjepa.core.dump_format import LABELS_FILE, record_fold
from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.core.errors import DumpError
from ecgjepa.data.challenge2021_scoring import TABLES, ChallengeScoring
from ecgjepa.data.labelled import DumpRecords, LabelledDataModule, LabelledRecords


def class_names(scoring: ChallengeScoring) -> list[str]:
    """The scored classes by abbreviation (``AF``; an equivalent pair as ``CRBBB|RBBB``)."""
    table = pd.read_csv(TABLES / "dx_mapping_scored.csv", dtype=str)
    abbreviation = dict(zip(table["SNOMEDCTCode"].str.strip(), table["Abbreviation"].str.strip(), strict=True))
    return ["|".join(abbreviation.get(code, code) for code in name.split("|")) for name in scoring.classes]


def read_dx(dump: SourceDump) -> dict[str, tuple[str, ...]]:
    """record_id -> the header's diagnosis codes, from the dump's ``labels.csv``."""
    path = dump.dir / LABELS_FILE
    if not path.is_file():
        raise DumpError(
            f"{path} not found: the dump of '{dump.source}' holds no header diagnoses (# Dx:). Dump a Challenge "
            "2021 source (or a folder of its records) again with data_prep (--force) to write them"
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns[:2]) != ["record_id", "dx"]:
        raise DumpError(f"{path}: expected the columns record_id, dx; got {list(table.columns)}")
    pairs = zip(table["record_id"], table["dx"], strict=True)
    return {rid: tuple(code for code in dx.split(",") if code) for rid, dx in pairs}


class Challenge2021DataModule(LabelledDataModule):
    """Multi-label classification of the Challenge 2021 scored diagnoses.

    Args:
        data_dir: data root holding one dump per source.
        sources: dump names under ``data_dir`` (``cpsc``, ``georgia``, ... or a folder dump of such records).
        **common: see :class:`~ecgjepa.data.labelled.LabelledDataModule`.
    """

    def __init__(self, data_dir: str, sources: list[str], task: str, **common: object) -> None:
        super().__init__(data_dir, task, "multilabel", **common)
        if not sources:
            raise ValueError("dataset.sources: name at least one dump of a Challenge 2021 source")
        self.sources = list(sources)
        self.scoring = ChallengeScoring.load()
        self.codes: dict[str, tuple[str, ...]] = {}

    def load_records(self) -> LabelledRecords:
        dumps, dump_of, rows, ids, codes = [], [], [], [], []
        for source in self.sources:
            dump = self.check_dump(SourceDump(self.data_dir, source))
            dx = read_dx(dump)
            record_ids = dump.record_ids().tolist()
            dump_of += [len(dumps)] * len(record_ids)
            rows += range(len(record_ids))
            ids += [f"{source}/{rid}" for rid in record_ids]
            codes += [dx.get(rid, ()) for rid in record_ids]
            dumps.append(dump)
        self.codes = dict(zip(ids, codes, strict=True))
        records = DumpRecords(tuple(dumps), np.asarray(dump_of, np.int64), np.asarray(rows, np.int64))
        targets = self.scoring.encode(codes).astype(np.float32)
        folds = np.array([record_fold(rid) for rid in ids], dtype=np.int64)
        return LabelledRecords(records, np.asarray(ids), class_names(self.scoring), targets, folds)

    def test_metrics(self, targets: np.ndarray, outputs: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
        """The Challenge metric of the test records: outputs at or above the validation-F1 thresholds are positive;
        a class left out of the task (absent_classes=drop) is never output but still counts in the labels."""
        labels = self.scoring.encode(self.codes[rid] for rid in self.ids["test"])
        binary = np.zeros_like(labels)
        column = {name: i for i, name in enumerate(class_names(self.scoring))}
        for c, name in enumerate(self.classes):
            binary[:, column[name]] = outputs[:, c] >= thresholds[c]
        return {"challenge_score": self.scoring.score(labels, binary)}

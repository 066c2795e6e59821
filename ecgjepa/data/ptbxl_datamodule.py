"""PTB-XL evaluation data (ECG-JEPA finetune.py): a benchmark task's labels and ``strat_fold`` folds of the
dumped records."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ecgjepa.core.dump_reader import SourceDump
from ecgjepa.core.errors import DumpError
from ecgjepa.data.labelled import DumpRecords, LabelledDataModule, LabelledRecords
from ecgjepa.data.ptbxl import is_multiclass, load_labels
from ecgjepa.data.sample import require_data_dir

log = logging.getLogger(__name__)


class PTBXLDataModule(LabelledDataModule):
    """PTB-XL for one benchmark task.

    Args:
        data_dir: data root holding the ``ptbxl`` dump (500 Hz, all folds).
        metadata_dir: folder with ``ptbxl_database.csv`` and ``scp_statements.csv``.
        task: ``all``, ``diagnostic``, ``subdiagnostic``, ``superdiagnostic``, ``form``, ``rhythm``, ``st_mem``.
        dump: the dump's folder name under ``data_dir``.
        bundled_sample: ``data_dir`` holds the bundled PTB-XL sample's dump, made on first use.
        **common: see :class:`~ecgjepa.data.labelled.LabelledDataModule`.
    """

    def __init__(
        self,
        data_dir: str,
        metadata_dir: str,
        task: str,
        dump: str = "ptbxl",
        bundled_sample: bool = False,
        **common: object,
    ) -> None:
        super().__init__(data_dir, task, "multiclass" if is_multiclass(task) else "multilabel", **common)
        self.metadata_dir, self.dump_name, self.bundled_sample = Path(metadata_dir), dump, bundled_sample

    def load_records(self) -> LabelledRecords:
        require_data_dir(self.data_dir, "ptbxl", self.bundled_sample)
        ecg_ids, classes, targets, folds = load_labels(self.metadata_dir, self.task)
        dump = self.check_dump(SourceDump(self.data_dir, self.dump_name))
        row_of = {int(r): i for i, r in enumerate(dump.index["record_id"].to_numpy())}
        present = np.array([int(e) in row_of for e in ecg_ids])
        if not present.any():
            raise DumpError(f"none of the labelled PTB-XL records of {self.metadata_dir} is in {dump.dir}")
        if not present.all():
            log.info(
                "PTB-XL: %d of %d labelled records are not in the dump; using %d",
                (~present).sum(),
                len(present),
                present.sum(),
            )
        ecg_ids = ecg_ids[present]
        rows = np.array([row_of[int(e)] for e in ecg_ids])
        return LabelledRecords(DumpRecords.of(dump, rows), ecg_ids, classes, targets[present], folds[present])

"""Bad-input catalogue (issue 5, item 4): every bad input fails with a message naming the file or key and
what was expected, before anything is written.

Which test covers each catalogue item (``file::test``; the new ones live in this module):

1. missing data root: test_train.py::test_missing_data_path_is_named (pre-training);
   test_missing_data_root_of_the_evaluation_is_named; data_prep: test_data_prep.py::test_cli_errors_name_the_path.
2. dump of the wrong dtype / shape / lead count / rate: test_train.py::test_dump_of_the_wrong_shape_is_named
   ((N, 8) array); test_dump_of_the_wrong_layout_is_named[float32, 3-d, 8 leads in meta.json, 100 Hz].
3. sidecar files not matching the dump: test_sidecar_files_not_matching_the_dump_are_named[index past the end,
   index column missing, meta.json missing].
4. dump containing NaN: test_non_finite_pretraining_crop_names_the_file_and_record (pre-training);
   test_non_finite_ptbxl_record_names_the_file_and_record (evaluation); data_prep interpolates NaNs or
   rejects an all-NaN lead: test_data_prep.py::test_bad_records_are_rejected_and_the_rest_is_dumped.
5. empty dump: test_empty_dump_is_refused.
6. mixture weights not summing to 1, unknown source, unknown source key: test_mixture_weights_must_sum_to_one;
   test_unknown_source_names_the_missing_dump_and_the_make_command; test_unknown_source_key_is_named.
7. unknown config key or group option: test_configs.py::test_unknown_group_option_is_named,
   test_configs.py::test_unknown_key_is_named, test_models.py::test_bad_inputs_are_named (model keys);
   test_unknown_optim_and_protocol_keys_are_named (keys added with ``+``, which Hydra lets through).
8. checkpoint of another model size: test_eval.py::test_size_mismatch_is_refused (evaluation),
   test_interop.py::test_a_model_size_mismatch_is_named (continuing an original checkpoint);
   test_resuming_another_model_size_or_a_classifier_is_refused (resuming pre-training).
9. truncated / corrupted checkpoint: test_interop.py::test_refuses_other_layouts_sizes_and_truncated_files
   (ecgjepa-convert); test_truncated_checkpoint_is_named[train resume, eval encoder, eval resume];
   test_reliability.py::test_resume_skips_half_written_and_truncated_checkpoints (``ckpt_path=last``).
10. checkpoint containing pickled code: test_checkpoint_with_pickled_code_is_refused[...] (the code never runs).
11. PTB-XL metadata missing a required column: test_ptbxl_labels.py::test_missing_column (and
    test_ptbxl_labels.py::test_missing_files, test_ptbxl_labels.py::test_unreadable_scp_codes).
12. a class without a positive in the validation / test fold: test_ptbxl_labels.py::test_check_classes_present,
    test_eval.py::test_a_class_without_positives_in_a_fold_is_named (test fold);
    test_class_without_positive_in_the_validation_fold_is_named (end to end).
13. WFDB record with fewer than 12 leads or an unknown lead name: test_data_prep.py::
    test_bad_records_are_rejected_and_the_rest_is_dumped (11 leads -> rejects.csv),
    test_signal.py::test_lead_permutation_errors_name_the_leads; test_bad_leads_and_rates_go_to_rejects (lead "X").
14. a sampling rate the resampler cannot handle: test_signal.py::test_resample_rejects_bad_rates (0, -100, NaN,
    inf Hz), test_signal.py::test_resample_rejects_empty_result; test_bad_leads_and_rates_go_to_rejects (a WFDB
    header with 0 Hz -> rejects.csv).
15. a crop longer than the record: test_eval.py::test_seven_crops_and_logit_averaging (crop_batch);
    test_crop_longer_than_the_record_is_refused (the labelled data module, ecgjepa-eval).
16. an output directory that is not writable: test_data_prep.py::test_cli_errors_name_the_path (data_prep);
    test_unwritable_output_directory_is_refused_before_any_work[train, eval].
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from data_prep.common import dump_source
from ecgjepa.data.dumps import DumpError, SourceDump
from ecgjepa.data.labelled import DumpRecords, RecordDataset
from ecgjepa.eval import run as eval_run
from ecgjepa.formats.files import CheckpointError
from ecgjepa.train import run as train_run
from tests.test_data_prep import DATA, write_like

Edit = Callable[[np.ndarray, pd.DataFrame, dict], tuple[np.ndarray, pd.DataFrame, dict]]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def make_dump(sample_data_dir: Path, root: Path, edit: Edit | None = None, records: int | None = None) -> Path:
    """A copy of the sample's PTB-XL dump (the first ``records`` only) under ``root/ptbxl``, after ``edit``."""
    src, dst = sample_data_dir / "sample" / "ptbxl", root / "ptbxl"
    dst.mkdir(parents=True)
    index = pd.read_csv(src / "index.csv")
    if records is not None:
        index = index.iloc[:records]
    signals = np.array(np.load(src / "signals.npy", mmap_mode="r")[: int((index["start"] + index["length"]).max())])
    meta = json.loads((src / "meta.json").read_text())
    if edit is not None:
        signals, index, meta = edit(signals, index, meta)
    if signals is not None:
        np.save(dst / "signals.npy", signals)
    if index is not None:
        index.to_csv(dst / "index.csv", index=False)
    if meta is not None:
        (dst / "meta.json").write_text(json.dumps(meta))
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copyfile(src / name, dst / name)
    return root


def pretrain_on(train_cfg, data_dir: Path, out: Path, *overrides: str):
    return train_run(
        train_cfg(f"data.data_dir={data_dir}", "data.sources.ptbxl.folds=null", *overrides, output_dir=out)
    )


# 1. missing data root -------------------------------------------------------------------------------------------


def test_missing_data_root_of_the_evaluation_is_named(eval_cfg, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = re.escape(str(tmp_path / "nowhere"))
    with pytest.raises(
        FileNotFoundError,
        match=rf"data directory {missing} does not exist; .* python -m data_prep ptbxl --raw RAW_DIR --out {missing}",
    ):
        eval_run(
            eval_cfg("encoder=vit_tiny", "dataset=ptbxl", f"paths.data_dir={tmp_path / 'nowhere'}", output_dir=out)
        )
    assert files_under(out) == []


# 2. / 3. / 5. dumps that do not match what the project expects ----------------------------------------------


def as_float32(signals, index, meta):
    return signals.astype(np.float32), index, meta


def three_d(signals, index, meta):
    return signals[:, :, None], index, meta


def eight_leads(signals, index, meta):
    return signals, index, {**meta, "leads": meta["leads"][:8]}


def at_100_hz(signals, index, meta):
    return signals, index, {**meta, "sampling_frequency": 100}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (as_float32, r"signals.npy: expected a float16 array of shape \(samples, 12\), got float32 \(10000, 12\)"),
        (three_d, r"signals.npy: expected a float16 array of shape \(samples, 12\), got float16 \(10000, 12, 1\)"),
        (eight_leads, r"meta.json: leads \['I', .*'V2'\] differ from the canonical \['I', .*'V6'\]"),
        (at_100_hz, r"ptbxl: sampling_frequency 100 Hz, but data.sampling_frequency is 500"),
    ],
    ids=["float32", "3-d", "8-leads", "100-hz"],
)
def test_dump_of_the_wrong_layout_is_named(
    train_cfg, sample_data_dir: Path, tmp_path: Path, edit: Edit, message: str
) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", edit, records=2)
    with pytest.raises(DumpError, match=message) as err:
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert str(data / "ptbxl") in str(err.value)  # the message names the dump
    assert files_under(tmp_path / "out") == []


def past_the_end(signals, index, meta):
    return signals[:7000], index, meta


def without_length(signals, index, meta):
    return signals, index.drop(columns=["length"]), meta


def without_meta(signals, index, meta):
    return signals, index, None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (past_the_end, r"index.csv does not match .*signals.npy: records end at sample 10000 but the array has 7000"),
        (without_length, r"index.csv: missing column\(s\) \['length'\]; expected at least \['record_id', 'start'"),
        (without_meta, r"meta.json is missing; re-run: python -m data_prep ptbxl --raw RAW_DIR --out "),
    ],
    ids=["index-past-the-end", "index-column-missing", "meta-missing"],
)
def test_sidecar_files_not_matching_the_dump_are_named(
    train_cfg, sample_data_dir: Path, tmp_path: Path, edit: Edit, message: str
) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", edit, records=2)
    with pytest.raises(DumpError, match=message):
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_empty_dump_is_refused(train_cfg, sample_data_dir: Path, tmp_path: Path) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", lambda s, i, m: (s[:0], i.iloc[:0], m), records=2)
    with pytest.raises(DumpError, match=re.escape(f"{data / 'ptbxl' / 'index.csv'}: the dump holds no records")):
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


# 4. non-finite values in a dump ---------------------------------------------------------------------------------


def nan_in_record(position: int) -> Edit:
    def edit(signals, index, meta):
        signals[int(index["start"].iat[position]) + 2500, 3] = np.nan
        return signals, index, meta

    return edit


def test_non_finite_pretraining_crop_names_the_file_and_record(
    train_cfg, sample_data_dir: Path, tmp_path: Path
) -> None:
    data = make_dump(sample_data_dir, tmp_path / "data", nan_in_record(1), records=2)
    record_id = pd.read_csv(data / "ptbxl" / "index.csv")["record_id"].iat[1]
    message = f"non-finite values in {data / 'ptbxl' / 'signals.npy'} record {record_id!r} (row 1)"
    with pytest.raises(DumpError, match=re.escape(message)):
        pretrain_on(train_cfg, data, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_non_finite_ptbxl_record_names_the_file_and_record(eval_cfg, sample_data_dir: Path, tmp_path: Path) -> None:
    index = pd.read_csv(sample_data_dir / "sample" / "ptbxl" / "index.csv")
    row = int(np.flatnonzero(index["fold"] == 1)[0])  # a training record: caught by the statistics
    data = make_dump(sample_data_dir, tmp_path / "data", nan_in_record(row))
    message = f"non-finite values in {data / 'ptbxl' / 'signals.npy'} record {index['record_id'].iat[row]!r}"
    with pytest.raises(DumpError, match=re.escape(message)):
        eval_run(eval_cfg("encoder=vit_tiny", f"dataset.data_dir={data}", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []
    # A validation/test record (outside the statistics) is checked when it is read.
    data = make_dump(sample_data_dir, tmp_path / "small", nan_in_record(1), records=2)
    records = DumpRecords.of(SourceDump(data, "ptbxl"), np.array([0, 1]))
    dataset = RecordDataset(records, np.zeros((2, 5), np.float32), np.zeros(12), np.ones(12), 5000)
    assert torch.isfinite(dataset[0][0]).all()
    with pytest.raises(DumpError, match=re.escape(f"record {index['record_id'].iat[1]!r} (row 1)")):
        dataset[1]


# 6. mixture of sources ------------------------------------------------------------------------------------------


def test_mixture_weights_must_sum_to_one(train_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"data.sources weights must sum to 1, got 0.5 from \{'ptbxl': 0.5\}"):
        train_run(train_cfg("data.sources.ptbxl.weight=0.5", output_dir=tmp_path / "out"))
    with pytest.raises(Exception, match=r"data.sources.ptbxl.weight must be > 0, got -1"):
        train_run(train_cfg("data.sources.ptbxl.weight=-1", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []


def test_unknown_source_names_the_missing_dump_and_the_make_command(
    train_cfg, sample_data_dir: Path, tmp_path: Path
) -> None:
    missing = re.escape(str(sample_data_dir / "sample" / "foo" / "signals.npy"))
    with pytest.raises(
        FileNotFoundError,
        match=rf"no dump for source 'foo': {missing} does not exist.*python -m data_prep foo --raw RAW_DIR",
    ):
        train_run(
            train_cfg("data.sources.ptbxl.weight=0.5", "+data.sources.foo.weight=0.5", output_dir=tmp_path / "out")
        )
    assert files_under(tmp_path / "out") == []


def test_unknown_source_key_is_named(train_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"data.sources.ptbxl: .*unexpected keyword argument 'wieght'"):
        train_run(train_cfg("+data.sources.ptbxl.wieght=1", output_dir=tmp_path / "out"))


# 7. config keys ---------------------------------------------------------------------------------------------------


def test_unknown_optim_and_protocol_keys_are_named(train_cfg, eval_cfg, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"unknown optim config key\(s\) \['learning_rat'\]; valid keys"):
        train_run(train_cfg("+optim.learning_rat=1", output_dir=tmp_path / "out"))
    with pytest.raises(ValueError, match=r"unknown protocol config key\(s\) \['stepz'\]; valid keys: \[.*'steps'"):
        eval_run(eval_cfg("encoder=vit_tiny", "+protocol.stepz=1", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []


# 8. / 9. / 10. checkpoints ------------------------------------------------------------------------------------------


def test_resuming_another_model_size_or_a_classifier_is_refused(
    train_cfg, tiny_encoder_run: Path, tmp_path: Path
) -> None:
    tiny = tiny_encoder_run / "checkpoints" / "last.ckpt"
    message = rf"{re.escape(str(tiny))}: the checkpoint's model differs from model=.*'dim': \(32, 192\)"
    with pytest.raises(CheckpointError, match=message):
        train_run(train_cfg("model=vit_xs", f"ckpt_path={tiny}", output_dir=tmp_path / "out"))
    classifier = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"protocol": {}, "model": {}}}, classifier)
    message = re.escape(f"{classifier}: a lightning-eval checkpoint cannot resume pre-training")
    with pytest.raises(CheckpointError, match=message):
        train_run(train_cfg(f"ckpt_path={classifier}", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []


RUNNERS = {
    "train-resume": lambda train_cfg, eval_cfg, path, out: train_run(train_cfg(f"ckpt_path={path}", output_dir=out)),
    "eval-encoder": lambda train_cfg, eval_cfg, path, out: eval_run(eval_cfg(f"encoder={path}", output_dir=out)),
    "eval-resume": lambda train_cfg, eval_cfg, path, out: eval_run(
        eval_cfg("encoder=vit_tiny", f"ckpt_path={path}", output_dir=out)
    ),
}


@pytest.mark.parametrize("runner", RUNNERS)
def test_truncated_checkpoint_is_named(train_cfg, eval_cfg, tiny_encoder_run: Path, tmp_path: Path, runner) -> None:
    data = (tiny_encoder_run / "checkpoints" / "last.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=re.escape(f"{cut}: cannot read the checkpoint (truncated or corrupted?)")
    ):
        RUNNERS[runner](train_cfg, eval_cfg, cut, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


class Payload:
    """A custom class: pickling an instance stores a reference to code (tests.test_bad_input.Payload)."""

    def __init__(self) -> None:
        self.weights = torch.zeros(3)


class RunsCode:
    """Unpickling this would call os.mkdir(marker): weights_only=True must refuse before that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("runner", RUNNERS)
def test_checkpoint_with_pickled_code_is_refused(train_cfg, eval_cfg, tmp_path: Path, runner) -> None:
    marker = tmp_path / "code-ran"
    for name, payload in (("custom.ckpt", Payload()), ("code.ckpt", RunsCode(marker))):
        torch.save({"state_dict": {"x": payload}, "global_step": 1}, tmp_path / name)
        message = f"{tmp_path / name}: refused to load: it is not a plain-tensor checkpoint (weights_only=True)"
        with pytest.raises(CheckpointError, match=re.escape(message)):
            RUNNERS[runner](train_cfg, eval_cfg, tmp_path / name, tmp_path / "out")
    assert not marker.exists()
    assert files_under(tmp_path / "out") == []


# 12. a class without positives --------------------------------------------------------------------------------------


def test_class_without_positive_in_the_validation_fold_is_named(eval_cfg, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class 'HYP' has no positive record in the validation fold 10"):
        eval_run(
            eval_cfg(
                "encoder=vit_tiny",
                "task=st_mem",
                "dataset.val_fold=10",
                "dataset.test_fold=8",
                "dataset.absent_classes=error",
                output_dir=tmp_path,
            )
        )
    assert files_under(tmp_path) == []


# 13. / 14. raw records: leads and sampling rates ----------------------------------------------------------------


def test_bad_leads_and_rates_go_to_rejects(tmp_path: Path) -> None:
    georgia = DATA / "challenge2021" / "georgia"
    raw = tmp_path / "georgia"
    raw.mkdir()
    write_like(georgia / "E07500", "good", raw, lambda x, names: (x, names))
    write_like(georgia / "E07500", "lead_x", raw, lambda x, names: (x, [*names[:11], "X"]))
    write_like(georgia / "E07500", "zero_hz", raw, lambda x, names: (x, names))
    header = raw / "zero_hz.hea"  # wfdb refuses to write fs=0, so edit the header it wrote
    header.write_text(header.read_text().replace("zero_hz 12 500 ", "zero_hz 12 0 ", 1))

    result = dump_source("georgia", raw, tmp_path / "out", workers=1, progress=False)
    assert (result.num_records, result.num_rejected) == (1, 2)
    reasons = pd.read_csv(tmp_path / "out" / "georgia" / "rejects.csv").set_index("record_id")["reason"]
    assert "missing leads ['V6']; unknown leads ['X']" in reasons["lead_x"]
    assert "fs_in must be a positive finite sampling rate, got 0.0" in reasons["zero_hz"]


# 15. a crop longer than the record ------------------------------------------------------------------------------


def test_crop_longer_than_the_record_is_refused(eval_cfg, sample_data_dir: Path, tmp_path: Path) -> None:
    message = r"crop_duration=12 s \(6000 samples\) is longer than the records \(10.0 s = 5000 samples\)"
    dataset = OmegaConf.to_container(eval_cfg("encoder=vit_tiny", "protocol.crop_duration=12").dataset, resolve=True)
    data_module = get_class(dataset.pop("_target_"))
    with pytest.raises(ValueError, match=message):
        data_module(**dataset)
    with pytest.raises(Exception, match=message):
        eval_run(eval_cfg("encoder=vit_tiny", "protocol.crop_duration=12", output_dir=tmp_path / "out"))
    assert files_under(tmp_path / "out") == []


# 16. an output directory that cannot be written ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "eval"])
def test_unwritable_output_directory_is_refused_before_any_work(train_cfg, eval_cfg, tmp_path: Path, command) -> None:
    # Tests run as root, which ignores chmod: a folder below a regular file can never be created.
    (tmp_path / "file.txt").write_text("")
    out = tmp_path / "file.txt" / "out"
    cfg = train_cfg(output_dir=out) if command == "train" else eval_cfg("encoder=vit_tiny", output_dir=out)
    with pytest.raises(PermissionError, match=re.escape(f"output directory {out} is not writable")):
        (train_run if command == "train" else eval_run)(cfg)


def test_float32_precision_is_checked_and_covers_cudnn() -> None:
    from ecgjepa.accel.precision import set_float32_precision

    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        with pytest.raises(ValueError, match="float32_matmul_precision: expected one of .* got 'fast'"):
            set_float32_precision("fast")
        set_float32_precision("highest")
        assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
        set_float32_precision("high")
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]

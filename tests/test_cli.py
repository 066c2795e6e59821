"""Every command reports a user's mistake as one message naming the file or key, exit status 2, no traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecgjepa.convert import main as convert_main
from ecgjepa.embed import main as embed_main
from ecgjepa.eval import run as eval_run
from ecgjepa.export import main as export_main
from ecgjepa.report import main as report_main
from ecgjepa.train import run as train_run
from tests.helpers import DATA, REPO, TINY, assert_user_error


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CSV (the PTB-XL statements table): a file of the wrong kind for a checkpoint or an array."""
    return Path(shutil.copy(DATA / "ptbxl" / "scp_statements.csv", tmp_path_factory.mktemp("wrong") / "labels.csv"))


# ecgjepa-embed --------------------------------------------------------------------------------------------------


def test_embed_an_input_of_the_wrong_kind_names_the_file(capsys, tmp_path: Path, text_file: Path) -> None:
    """A CSV is read as a manifest of array files, a .npy as model-ready arrays: a text file is neither."""
    assert_user_error(
        capsys,
        lambda: embed_main([f"encoder={TINY.minified}", f"input={text_file}", f"output={tmp_path / 'z.npy'}"]),
        f"ecgjepa-embed: error: {text_file}: missing column(s) ['file', 'sampling_rate', 'leads']",
    )
    not_an_array = Path(shutil.copy(text_file, tmp_path / "x.npy"))
    err = assert_user_error(
        capsys,
        lambda: embed_main([f"encoder={TINY.minified}", f"input={not_an_array}", f"output={tmp_path / 'z.npy'}"]),
        f"ecgjepa-embed: error: {not_an_array}: not a readable .npy array",
    )
    assert "pickle" not in err.split("expected one written by numpy.save")[0]
    assert not (tmp_path / "z.npy").exists()


def test_embed_a_missing_encoder_is_named(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pt"
    assert_user_error(
        capsys,
        lambda: embed_main([f"encoder={missing}", f"input={tmp_path}", f"output={tmp_path / 'z.npy'}"]),
        f"encoder={missing}: no such file or directory",
    )


@pytest.mark.parametrize("what", ["csv", "truncated", "array"])
def test_embed_a_file_that_is_no_checkpoint_is_named(capsys, tmp_path: Path, text_file: Path, what: str) -> None:
    if what == "csv":
        encoder = text_file
    elif what == "truncated":
        encoder = tmp_path / "cut.pt"
        data = TINY.minified.read_bytes()
        encoder.write_bytes(data[: len(data) // 2])
    else:
        encoder = tmp_path / "x.npy"
        np.save(encoder, np.zeros((2, 12, 5000), dtype=np.float32))
    assert_user_error(
        capsys,
        lambda: embed_main([f"encoder={encoder}", f"input={tmp_path}", f"output={tmp_path / 'z.npy'}"]),
        f"{encoder}: cannot read the checkpoint",
    )


def test_embed_unknown_and_missing_arguments_are_named(capsys, tmp_path: Path) -> None:
    assert_user_error(capsys, lambda: embed_main(["encoder=x", "inptu=y", "output=z"]), "'inptu=y'")
    assert_user_error(capsys, lambda: embed_main(["encoder=x"]), "missing ['input', 'output']")


def test_embed_a_folder_without_records_is_named(capsys, tmp_path: Path) -> None:
    assert_user_error(
        capsys,
        lambda: embed_main([f"encoder={TINY.minified}", f"input={tmp_path}", f"output={tmp_path / 'z.npy'}"]),
        f"input={tmp_path} is neither a .npy file nor a folder with WFDB records",
    )


# ecgjepa-convert, ecgjepa-export, ecgjepa-report --------------------------------------------------------------


def test_convert_and_export_name_bad_checkpoints(capsys, tmp_path: Path, text_file: Path) -> None:
    assert_user_error(
        capsys, lambda: convert_main([str(text_file), str(tmp_path / "o.ckpt")]), f"{text_file}: cannot read"
    )
    assert_user_error(
        capsys,
        lambda: convert_main([str(tmp_path / "none.pt"), str(tmp_path / "o.ckpt")]),
        f"checkpoint {tmp_path / 'none.pt'} does not exist",
    )
    assert_user_error(
        capsys,
        lambda: convert_main([str(TINY.minified), str(tmp_path / "o.pt"), "format=onnx"]),
        "format must be one of",
        "'onnx'",
    )
    assert_user_error(capsys, lambda: export_main([str(text_file), str(tmp_path / "out")]), f"{text_file}: cannot")
    assert_user_error(capsys, lambda: export_main([str(text_file)]), "usage: ecgjepa-export")
    assert not list(tmp_path.iterdir())


def test_report_of_a_missing_sweep_is_named(capsys, tmp_path: Path) -> None:
    assert_user_error(capsys, lambda: report_main([str(tmp_path / "none")]), "sweep directory not found")


# ecgjepa-train, ecgjepa-eval (Hydra) ------------------------------------------------------------------------


def run_command(module: str, *args: str, cwd: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECGJEPA_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def assert_command_error(result: subprocess.CompletedProcess, *named: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for text in named:
        assert text in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_train_names_an_unknown_key_and_a_truncated_dump(tmp_path: Path, sample_data_dir: Path) -> None:
    result = run_command("ecgjepa.train", "optim.learning_rat=1", cwd=tmp_path, data_dir=sample_data_dir)
    assert_command_error(result, "learning_rat")
    data = tmp_path / "data"
    shutil.copytree(sample_data_dir / "sample" / "ptbxl", data / "ptbxl")
    signals = data / "ptbxl" / "signals.npy"
    signals.write_bytes(signals.read_bytes()[: signals.stat().st_size // 2])
    result = run_command(
        "ecgjepa.train",
        "debug=fast",
        f"data.data_dir={data}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        data_dir=sample_data_dir,
    )
    assert_command_error(
        result, f"ecgjepa-train: error: {signals}: not a readable .npy array (truncated or corrupted?)"
    )


@pytest.mark.slow
def test_eval_names_a_missing_and_a_wrong_encoder(tmp_path: Path, sample_data_dir: Path, text_file: Path) -> None:
    common = ["dataset=ptbxl_sample", "task=superdiagnostic", "trainer=cpu", "logger=none"]
    missing = tmp_path / "nowhere.pt"
    result = run_command(
        "ecgjepa.eval",
        f"encoder={missing}",
        *common,
        f"hydra.run.dir={tmp_path / 'a'}",
        cwd=tmp_path,
        data_dir=sample_data_dir,
    )
    assert_command_error(result, f"ecgjepa-eval: error: encoder={missing}: no such file or directory")
    result = run_command(
        "ecgjepa.eval",
        f"encoder={text_file}",
        *common,
        f"hydra.run.dir={tmp_path / 'b'}",
        cwd=tmp_path,
        data_dir=sample_data_dir,
    )
    assert_command_error(result, f"{text_file}: cannot read the checkpoint")


@pytest.mark.slow
def test_eval_names_the_line_of_a_missing_record_in_a_labels_csv(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("record,AF\nrecords500/00000/00001_hr,0\nnot/there,1\n")
    result = run_command(
        "ecgjepa.eval",
        "encoder=vit_tiny",
        "dataset=csv",
        f"dataset.path={labels}",
        "trainer=cpu",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        data_dir=tmp_path / "data",
    )
    assert_command_error(result, f"ecgjepa-eval: error: {labels}: record(s) not found: line 2:", "line 3: 'not/there'")


@pytest.mark.parametrize("command", ["train", "eval"])
def test_unwritable_output_directory_is_refused_before_any_work(train_cfg, eval_cfg, tmp_path: Path, command) -> None:
    # Tests run as root, which ignores chmod: a folder below a regular file can never be created.
    (tmp_path / "file.txt").write_text("")
    out = tmp_path / "file.txt" / "out"
    cfg = train_cfg(output_dir=out) if command == "train" else eval_cfg("encoder=vit_tiny", output_dir=out)
    with pytest.raises(PermissionError, match=re.escape(f"output directory {out} is not writable")):
        (train_run if command == "train" else eval_run)(cfg)

"""The README runs as written: the Python example (on an export of a freshly pre-trained tiny encoder) and the
"Your own data" walk-through (with short runs)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgjepa.export import export
from tests.helpers import REPO


def test_use_your_own_ecgs_example_runs(
    tiny_encoder_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use the encoder on your own ECGs", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    export(tiny_encoder_run, tmp_path / "export")
    monkeypatch.chdir(REPO)
    exec(compile(code.replace("outputs/demo/export", str(tmp_path / "export")), "README", "exec"), {})
    assert "torch.Size([1, 200, 32]) torch.Size([1, 32])" in capsys.readouterr().out


FAST = {
    "ecgjepa-train": [
        "model=vit_tiny",
        "trainer.max_steps=2",
        "data.batch_size=4",
        "data.num_workers=0",
        "callbacks=pretrain",
    ],
    "ecgjepa-eval": [
        "trainer=cpu",
        "protocol.steps=4",
        "protocol.checkpoint_interval=2",
        "protocol.batch_size=32",
        "dataset.absent_classes=drop",  # 63 records: some classes miss a split
    ],
}


def header_labels(clinic: Path) -> pd.DataFrame:
    """labels.csv for the records below ``clinic``: 0/1 columns of the three most frequent scored diagnoses."""
    from ecgjepa.core.records import header_dx
    from ecgjepa.data.challenge2021_datamodule import class_names
    from ecgjepa.data.challenge2021_scoring import ChallengeScoring

    scoring = ChallengeScoring.load()
    records = sorted(path.relative_to(clinic).with_suffix("").as_posix() for path in clinic.rglob("*.hea"))
    codes = [
        header_dx(line[1:] for line in (clinic / f"{r}.hea").read_text().splitlines() if line[:1] == "#")
        for r in records
    ]
    labels = scoring.encode(codes).astype(int)
    frequent = np.argsort(-labels.sum(axis=0))[:3]
    table = pd.DataFrame(labels[:, frequent], columns=[class_names(scoring)[c] for c in frequent])
    table.insert(0, "record", records)
    return table


@pytest.mark.slow
def test_your_own_data_walkthrough_runs(tmp_path: Path) -> None:
    """The section's commands as written, on a folder of real records (the Challenge 2021 ones, 10-25 s, labelled
    from their headers), with short runs."""
    import os
    import shlex
    import subprocess
    import sys

    from tests.helpers import DATA

    section = (REPO / "README.md").read_text().split("## Your own data", 1)[1]
    lines = [
        line.split("#")[0].strip() for line in re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines()
    ]
    assert len(lines) <= 10
    clinic = shutil.copytree(DATA / "challenge2021", tmp_path / "clinic_ecgs", ignore=shutil.ignore_patterns("scoring"))
    header_labels(clinic).to_csv(clinic / "labels.csv", index=False)
    new = shutil.copytree(DATA / "challenge2021" / "georgia", tmp_path / "new_ecgs")
    env = {**os.environ, "ECGJEPA_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    modules = {"ecgjepa-train": "ecgjepa.train", "ecgjepa-eval": "ecgjepa.eval", "ecgjepa-predict": "ecgjepa.predict"}
    for line in filter(None, lines):
        words = shlex.split(line.replace("/path/to/clinic_ecgs", str(clinic)).replace("/path/to/new_ecgs", str(new)))
        if words[0] == "python":
            argv = [sys.executable, *words[1:], "--workers", "1", "--no-progress"]
        else:
            argv = [sys.executable, "-m", modules[words[0]], *words[1:], *FAST.get(words[0], [])]
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
    table = pd.read_csv(tmp_path / "predictions.csv", index_col="record_id")
    assert len(table) == 20 and list(table.columns)[-1] == "labels"


def section_blocks(title: str, language: str) -> list[str]:
    section = (REPO / "README.md").read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_share_your_encoder_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The section's Python lines, with a ViT-XS export served as YOU/ecg-jepa-vit-xs by a loopback stand-in for
    the Hub (huggingface_hub downloads it into a cache in tmp_path)."""
    import huggingface_hub.constants as hf_constants
    import torch

    from ecgjepa.formats.export import export_description, write_export
    from tests.local_hub import local_hub

    torch.manual_seed(0)
    fresh = torch.hub.load(str(REPO), "vit_xs", source="local")
    folder = write_export(tmp_path / "export", fresh.state_dict(), export_description(fresh.config, {}, {}))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    with local_hub({"YOU/ecg-jepa-vit-xs": folder}) as url:
        monkeypatch.setattr(hf_constants, "ENDPOINT", url)
        monkeypatch.setattr(
            hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        names: dict = {}
        exec(compile(section_blocks("Share your encoder", "python")[0], "README", "exec"), names)
    x = torch.randn(1, 12, 1250)
    with torch.no_grad():
        assert torch.equal(names["encoder"](x), fresh(x)) and torch.equal(names["same"](x), fresh(x))


def test_deploy_without_pytorch_runs(
    tiny_classifier_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The section's commands and Python lines on the tiny attentive-probe run; the ONNX probabilities of record 1
    agree with ecgjepa-predict's (the README's few lines skip the float16 rounding of the dumps)."""
    import ast
    import shlex

    from ecgjepa.export import main as export_main
    from ecgjepa.predict import main as predict_main

    folder, records = tmp_path / "classifier", tmp_path / "records"
    records.mkdir()
    for suffix in (".hea", ".dat"):
        shutil.copy(REPO / "sample_data" / "ptbxl" / "records100" / "00000" / f"00001_lr{suffix}", records)
    commands = section_blocks("Deploy without PyTorch", "bash")[0]
    replaced = {"outputs/demo/linear": str(tiny_classifier_run), "outputs/demo/classifier": str(folder)}
    replaced |= {"/path/to/ecgs": str(records), "predictions.csv": str(tmp_path / "predictions.csv")}
    for line in commands.strip().splitlines():
        for old, new in replaced.items():
            line = line.replace(old, new)
        program, *args = shlex.split(line.split("#")[0])
        {"ecgjepa-export": export_main, "ecgjepa-predict": predict_main}[program](args)
    capsys.readouterr()
    monkeypatch.chdir(REPO)
    code = section_blocks("Deploy without PyTorch", "python")[0].replace("outputs/demo/classifier", str(folder))
    exec(compile(code, "README", "exec"), {})
    printed = ast.literal_eval(capsys.readouterr().out.strip().replace("np.float32(", "(").replace("))", ")"))
    predicted = pd.read_csv(tmp_path / "predictions.csv", index_col="record_id").loc["00001_lr"]
    for name, probability in printed.items():
        assert abs(probability - predicted[name]) < 0.02, name

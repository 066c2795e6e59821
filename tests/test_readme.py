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

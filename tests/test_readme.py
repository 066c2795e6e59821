"""The README's Python example runs as written (on an export of a freshly pre-trained tiny encoder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecgjepa.export import export
from tests.conftest import REPO


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

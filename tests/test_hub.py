"""The Hugging Face Hub (ecgjepa.formats.hub): ``hf://OWNER/NAME[@revision]`` wherever an encoder or a run is named,
through ``huggingface_hub``'s own download and cache (served from the loopback interface by tests/local_hub.py),
``HF_HUB_OFFLINE``, and ``ecgjepa-export … push_to_hub=`` with its Hub-format model card."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants as hf_constants
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import ecgjepa
from ecgjepa.embed import main as embed_main
from ecgjepa.eval import run as eval_run
from ecgjepa.export import export
from ecgjepa.export import main as export_main
from ecgjepa.predict import main as predict_main
from ecgjepa.utils.hydra import compose_config
from tests.helpers import DATA, assert_user_error, short_evaluation
from tests.local_hub import COMMIT, local_hub, point_huggingface_hub

RECORDS = DATA / "ptbxl" / "records500" / "00000"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point huggingface_hub at an endpoint (and a cache in tmp_path, no token); ``hub(url, offline=False)``."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no_tokens"))

    def point(url: str, offline: bool = False) -> None:
        point_huggingface_hub(monkeypatch, url, offline)

    return point


def test_an_export_from_the_hub_embeds_as_its_checkpoint_online_and_offline(
    tiny_encoder_run: Path, tmp_path: Path, hub, sample_data_dir: Path
) -> None:
    folder = export(tiny_encoder_run, tmp_path / "export")
    with local_hub({"me/tiny": folder}) as url:
        hub(url)
        embed_main(["encoder=hf://me/tiny", f"input={RECORDS}", f"output={tmp_path / 'hub.npy'}"])
    assert (tmp_path / "cache" / "models--me--tiny" / "snapshots" / COMMIT / "config.json").is_file()
    embed_main([f"encoder={tiny_encoder_run}", f"input={RECORDS}", f"output={tmp_path / 'ckpt.npy'}"])
    np.testing.assert_array_equal(np.load(tmp_path / "hub.npy"), np.load(tmp_path / "ckpt.npy"))
    hub("http://127.0.0.1:9", offline=True)  # the server is gone: only the cache answers
    embed_main([f"encoder=hf://me/tiny@{COMMIT}", f"input={RECORDS}", f"output={tmp_path / 'offline.npy'}"])
    np.testing.assert_array_equal(np.load(tmp_path / "offline.npy"), np.load(tmp_path / "ckpt.npy"))
    x = torch.randn(2, 12, 500)
    with torch.no_grad():
        assert torch.equal(ecgjepa.load_encoder("hf://me/tiny")(x), ecgjepa.load_encoder(tiny_encoder_run)(x))
    metrics = eval_run(compose_config("eval", [*short_evaluation(sample_data_dir), "encoder=hf://me/tiny"], tmp_path))
    assert metrics["encoder"] == "hf://me/tiny" and metrics["encoder_name"] == "me/tiny"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf://me/none", "hf://me/none: no repository me/none on the Hugging Face Hub"),
        ("hf://me/tiny@v9", "hf://me/tiny@v9: me/tiny has no revision 'v9'"),
        ("hf://me/empty", "hf://me/empty: the repository holds no config.json"),
        ("hf://nope", "hf://nope: expected hf://OWNER/NAME"),
    ],
)
def test_a_wrong_hub_id_revision_or_repository_is_named(
    tiny_encoder_run: Path, tmp_path: Path, hub, capsys: pytest.CaptureFixture, spec: str, message: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("not an export\n")
    with local_hub({"me/tiny": export(tiny_encoder_run, tmp_path / "export"), "me/empty": empty}) as url:
        hub(url)
        call = ["encoder=" + spec, f"input={RECORDS}", f"output={tmp_path / 'z.npy'}"]
        assert_user_error(capsys, lambda: embed_main(call), message)


def test_offline_without_a_cached_copy_says_so(tmp_path: Path, hub, capsys: pytest.CaptureFixture) -> None:
    hub("http://127.0.0.1:9", offline=True)
    call = ["encoder=hf://me/tiny", f"input={RECORDS}", f"output={tmp_path / 'z.npy'}"]
    assert_user_error(capsys, lambda: embed_main(call), "not in the local Hugging Face cache", "HF_HUB_OFFLINE")


def test_push_builds_the_folder_and_fails_clearly_without_credentials_or_hub(
    tiny_encoder_run: Path, tmp_path: Path, hub, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub("http://127.0.0.1:9")
    out = tmp_path / "push"
    call = [str(tiny_encoder_run), str(out), "push_to_hub=me/tiny", "license=cc-by-4.0"]
    assert_user_error(capsys, lambda: export_main(call), "push_to_hub=me/tiny: no Hugging Face token", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header == {
        "license": "cc-by-4.0",
        "library_name": "ecgjepa",
        "tags": ["ecg", "self-supervised", "jepa", "ecgjepa"],
        "datasets": ["ptbxl"],
    }
    assert "## Evaluation results" in card
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    assert_user_error(capsys, lambda: export_main(call), "push_to_hub=me/tiny: the upload failed", str(out))


def test_predict_runs_a_classifier_from_the_hub(tiny_classifier_run: Path, tmp_path: Path, hub) -> None:
    folder = export(tiny_classifier_run, tmp_path / "classifier")
    with local_hub({"me/classifier": folder}) as url:
        hub(url)
        predict_main(["run=hf://me/classifier", f"input={RECORDS}", f"output={tmp_path / 'hub.csv'}"])
    predict_main([f"run={tiny_classifier_run}", f"input={RECORDS}", f"output={tmp_path / 'run.csv'}"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "hub.csv"), pd.read_csv(tmp_path / "run.csv"))

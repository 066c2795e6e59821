"""``hubconf.py``: torch.hub's entry points give the module :func:`ecgjepa.load_encoder` gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ecgjepa
from ecgjepa.core.records import RecordRef, folder_spec, prepare_record, read_record
from ecgjepa.formats.export import export_description, write_export
from tests.helpers import DATA

REPO = Path(__file__).resolve().parents[1]


def real_input(samples: int) -> torch.Tensor:
    raw = read_record(DATA / "ptbxl" / "records500" / "00000", RecordRef("00001", "00001_hr"))
    x = prepare_record(raw, folder_spec("hub", 10.0))[:samples].astype("float32")
    return torch.from_numpy((x - x.mean(0)) / x.std(0)).T[None].contiguous()


def test_torch_hub_load_equals_load_encoder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    fresh = torch.hub.load(str(REPO), "vit_xs", source="local")
    assert not fresh.training and fresh.config.name == "vit_xs" and fresh.config.channel_size == 5000
    assert sum(p.numel() for p in fresh.parameters()) == 3_600_000
    folder = write_export(tmp_path / "export", fresh.state_dict(), export_description(fresh.config, {}, {}))
    hub = torch.hub.load(str(REPO), "vit_xs", source="local", weights=str(folder))
    direct = ecgjepa.load_encoder(folder)
    x = real_input(1250)
    with torch.no_grad():
        assert torch.equal(hub(x), direct(x))
        assert torch.equal(hub(x), fresh(x))
    with pytest.raises(ValueError, match="holds a vit_xs encoder, not vit_s"):
        torch.hub.load(str(REPO), "vit_s", source="local", weights=str(folder))

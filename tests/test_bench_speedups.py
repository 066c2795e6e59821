"""How bench.py compares ours with the original, and how table.py renders it, on a recorded side-by-side run."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from table import speedup_table  # noqa: E402

from bench import speedups  # noqa: E402

# Three interleaved rounds of ViT-XS linear-probe steps, fp32 and bf16, both implementations (AMD VM).
RECORDED = json.loads((ROOT / "tests/data/bench/side_by_side_repeats.json").read_text())["results"]


def by_key(lines: list[dict]) -> dict:
    return {(s["batch"], s["precision"], s["original_precision"]): s for s in lines}


def test_same_precision_and_bf16_against_the_original_fp32() -> None:
    lines = by_key(speedups(RECORDED))
    assert sorted(lines) == [
        (32, "bf16", "bf16"),
        (32, "bf16", "fp32"),
        (32, "fp32", "fp32"),
        (128, "bf16", "bf16"),
        (128, "bf16", "fp32"),
        (128, "fp32", "fp32"),
    ]
    rows = {(r["impl"], r["batch"], r["precision"]): r for r in RECORDED}
    for (batch, ours, original), line in lines.items():
        expected = rows["ecgjepa", batch, ours]["ecgs_per_s"] / rows["original", batch, original]["ecgs_per_s"]
        assert line["speedup"] == pytest.approx(expected)
    # The "best CPU setting" comparison: our bf16-mixed default against the original's fp32.
    assert lines[128, "bf16", "fp32"]["speedup"] == pytest.approx(529.9 / 293.7, rel=1e-3)


def test_rounds_pair_the_runs_of_each_interleaved_round() -> None:
    line = by_key(speedups(RECORDED))[32, "fp32", "fp32"]
    ours = [325.4, 249.5, 380.9]
    original = [208.2, 307.2, 260.7]
    assert line["speedup_rounds"] == pytest.approx([a / b for a, b in zip(ours, original, strict=True)], rel=1e-3)
    assert min(line["speedup_rounds"]) < line["speedup"] < max(line["speedup_rounds"])
    # Our bf16 runs and the original's fp32 runs come from separate loops: no rounds to pair.
    assert by_key(speedups(RECORDED))[32, "bf16", "fp32"]["speedup_rounds"] == []


def test_checkpointed_rows_of_ours_are_not_compared() -> None:
    rows = [{**r, "activation_checkpointing": "full"} if r["impl"] == "ecgjepa" else r for r in RECORDED]
    assert speedups(rows) == []


def test_table_shows_both_precisions_and_the_rounds_and_reads_older_files() -> None:
    table = speedup_table(speedups(RECORDED))
    assert "| linear probe | vit_xs | 128 | bf16 (fp32) | 1.80× |" in table
    assert "| linear probe | vit_xs | 128 | bf16 (bf16) | 1.15×; 1.11–1.20× |" in table
    older = json.loads((ROOT / "tests/data/bench/side_by_side_single.json").read_text())["speedups"]
    assert "| pre-train | vit_xs | 32 | fp32 (fp32) | 1.17× |" in speedup_table(older)

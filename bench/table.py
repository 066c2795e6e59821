"""Render a ``bench.py`` JSON file as Markdown tables (results, then ours vs the original if measured).

python bench/table.py docs/bench/side_by_side_vit_xs.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WORK_NAMES = {"pretrain": "pre-train", "linear": "linear probe", "finetune": "fine-tune", "eval": "eval (7 crops)"}


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def results_table(rows: list[dict]) -> str:
    header = ["impl", "work", "model", "batch", "precision", "act. ckpt", "malloc", "ECG/s (runs)", "GFLOP/s"]
    on_gpu = any("peak_gpu_mb" in r for r in rows)
    body = []
    for r in rows:
        runs = r.get("ecgs_per_s_runs", [r["ecgs_per_s"]])
        spread = f" ({', '.join(f'{v:.1f}' for v in runs)})" if len(runs) > 1 else ""
        body.append(
            [
                r.get("impl", "ecgjepa"),
                WORK_NAMES.get(r["work"], r["work"]),
                r["model"],
                str(r["batch"]),
                r["precision"],
                r["activation_checkpointing"],
                r["allocator"],
                f"{r['ecgs_per_s']:.1f}{spread}",
                f"{r['gflops']:.0f}" if "gflops" in r else "–",
                f"{r['pct_peak']:.0f}" if "pct_peak" in r else "–",
                f"{r['peak_rss_mb']:.0f}",
                *([f"{r['peak_gpu_mb']:.0f}" if "peak_gpu_mb" in r else "–"] if on_gpu else []),
            ]
        )
    return markdown([*header, "% peak", "peak RSS MB", *(["peak GPU MB"] if on_gpu else [])], body)


def speedup_table(speedups: list[dict]) -> str:
    header = ["work", "model", "batch", "precision: ours (original)", "ours ÷ original (ECG/s; rounds)"]
    body = [
        [
            WORK_NAMES.get(s["work"], s["work"]),
            s["model"],
            str(s["batch"]),
            f"{s['precision']} ({s.get('original_precision', s['precision'])})",
            f"{s['speedup']:.2f}×{rounds_range(s.get('speedup_rounds', []))}",
            f"{s['original_pct_peak']:.0f} → {s['ours_pct_peak']:.0f}",
            f"{s['rss_ratio']:.2f}",
        ]
        for s in speedups
    ]
    return markdown([*header, "% peak: original → ours", "RSS ours ÷ original"], body)


def rounds_range(rounds: list[float]) -> str:
    """'; 1.11–1.26×' for the ratios of two or more interleaved rounds, '' otherwise."""
    return f"; {min(rounds):.2f}–{max(rounds):.2f}×" if len(rounds) > 1 else ""


def main() -> None:
    for path in sys.argv[1:]:
        data = json.loads(Path(path).read_text())
        machine = data["machine"]
        peaks = machine["matmul_peak_gflops"]
        where = f"{machine['gpu']}, " if "gpu" in machine else ""
        compiled = ", torch.compile" if machine.get("compile") else ""
        peak = "matmul peak " + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items())
        print(f"{path}: {where}{peak}{compiled}\n")
        print(results_table(data["results"]))
        if data.get("speedups"):
            print()
            print(speedup_table(data["speedups"]))
        print()


if __name__ == "__main__":
    main()

"""Small-scale reproduction on the bundled PTB-XL sample (CPU, ~30 min on 2 cores).

Pre-trains a ViT-XS with JEPA on folds 1-8 of the 500 bundled records, then runs the attentive
("linear") probe on the superdiagnostic task for several seeds, for the JEPA encoder and for a randomly
initialised ViT-XS, and writes a paper-style table (``reproduce_small.md``) and a figure
(``reproduce_small.png``) into ``--out`` (default ``outputs/reproduce_small``). docs/reproduce_small.md
discusses a run of it.

    python scripts/reproduce_small.py [--steps 1000] [--probe-steps 200] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ecgjepa.core.files import write_text_atomic  # noqa: E402
from ecgjepa.plots import save_figure  # noqa: E402
from ecgjepa.report import paper_format  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sh(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def pooled_linear_probe(pretrain: Path, seeds: int) -> tuple[list[float], list[float]]:
    """Test macro AUROC of a logistic regression on mean-pooled tokens (the online probe's method) for the
    JEPA encoder and for ``seeds`` randomly initialised ViT-XS."""
    from hydra.utils import instantiate

    from ecgjepa import load_encoder
    from ecgjepa.models import ModelConfig, VisionTransformer
    from ecgjepa.utils.hydra import compose_config, load_group_option

    cfg = compose_config("train", [f"paths.data_dir={ROOT / 'data'}"], pretrain)
    probe = instantiate(cfg.callbacks.online_probe, max_train_records=10**6)
    device = torch.device("cpu")
    jepa = probe.evaluate(load_encoder(str(pretrain)), device, "test")
    random_vit_xs = {**load_group_option("model", "vit_xs"), **probe.data.input_shape}
    randoms = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        randoms.append(probe.evaluate(VisionTransformer(ModelConfig.from_dict(random_vit_xs)), device, "test"))
    return [jepa], randoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="pre-training steps")
    parser.add_argument("--probe-steps", type=int, default=200, help="attentive-probe training steps per seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "reproduce_small")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --out (re-runs are skipped)")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    start = time.time()
    pretrain = args.out / "pretrain"
    if not (args.reuse and (pretrain / "encoder" / "config.json").is_file()):
        sh(
            [
                str(bin_dir / "ecgjepa-train"),
                "model=vit_xs",
                "data=ptbxl_sample",
                "optim=demo",
                f"optim.steps={args.steps}",
                f"optim.learning_rate_warmup_steps={args.steps // 10}",
                f"callbacks.model_checkpoint.every_n_train_steps={args.steps}",
                f"callbacks.online_probe.every_n_steps={max(1, args.steps // 5)}",
                f"hydra.run.dir={pretrain}",
            ]
        )
    seeds = ",".join(str(s) for s in range(args.seeds))
    rows = {}
    for name, encoder in (("JEPA (PTB-XL sample)", str(pretrain)), ("random init", "vit_xs")):
        sweep = args.out / ("jepa" if encoder != "vit_xs" else "random")
        sh(
            [
                str(bin_dir / "ecgjepa-eval"),
                "-m",
                f"seed={seeds}",
                f"encoder={encoder}",
                "dataset=ptbxl_sample",
                "task=superdiagnostic",
                "protocol=linear",
                f"protocol.steps={args.probe_steps}",
                "protocol.checkpoint_interval=50",
                f"hydra.sweep.dir={sweep}",
            ]
        )
        runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
        rows[name] = np.array([r["test_auroc"] for r in runs]), np.array([r["val_auroc"] for r in runs])
    pooled = pooled_linear_probe(pretrain, args.seeds)
    minutes = (time.time() - start) / 60
    lines = [
        "| encoder (ViT-XS) | attentive probe: test AUROC | attentive probe: val AUROC | linear probe on pooled "
        "tokens: test AUROC | seeds |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {paper_format(t.mean(), t.std())} | {paper_format(v.mean(), v.std())} | "
            f"{paper_format(np.mean(p), np.std(p))} | {len(t)} |"
            for (name, (t, v)), p in zip(rows.items(), pooled, strict=True)
        ),
    ]
    table = "\n".join(lines)
    note = (
        f"Attentive probe, superdiagnostic task, bundled sample (folds 1-8 train, 9 val, 10 test); JEPA pre-training "
        f"{args.steps} steps of batch 32; probe {args.probe_steps} steps; {minutes:.0f} min on this machine."
    )
    write_text_atomic(args.out / "reproduce_small.md", table + "\n\n" + note + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, (test, _) in enumerate(rows.values()):
        ax.bar(i, test.mean(), yerr=test.std(), color=("tab:blue", "tab:gray")[i], alpha=0.8, capsize=4)
        ax.scatter(np.full(len(test), i), test, color="k", s=12, zorder=3)
    ax.set_xticks(range(len(rows)), list(rows))
    ax.set_ylabel("test macro AUROC")
    ax.set_ylim(0.4, 1.0)
    ax.set_title("attentive probe, superdiagnostic, 500-record sample", fontsize=9)
    fig.tight_layout()
    save_figure(fig, args.out / "reproduce_small.png")
    print(table + "\n\n" + note)


if __name__ == "__main__":
    main()

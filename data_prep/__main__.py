"""`python -m data_prep SOURCE --raw RAW --out OUT [--download]`: dump one raw ECG source (or `all`) for ecgjepa.

Dump format and behaviour: see `ecgjepa/core/dump_format.py` and
`ecgjepa/core/dump_writer.py`. Expected raw layouts: see `data_prep/sources.py`.
`--download` first fetches the open-access raw files into RAW (see `data_prep/download.py`); it needs
network access and fails with a clear message without it. Without `--download`, RAW is a local copy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep.common import dump_all, dump_folder, dump_source
from data_prep.download import fetch
from data_prep.sources import SOURCES, find_source_dir
from ecgjepa.core.dump_writer import default_workers
from ecgjepa.core.errors import DataPrepError


def _folder_help() -> str:
    return "; ".join(f"{slug}: {' or '.join(spec.folders)}" for slug, spec in SOURCES.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Dump a raw ECG source into OUT/<source>/ (signals.npy float16 at 500 Hz in canonical "
        "lead order, index.csv, rejects.csv, meta.json). Resumable: re-run the same command after an "
        "interruption. Idempotent: a complete dump is left alone unless --force is given.",
        epilog=f"Folders looked for under --raw with 'all': {_folder_help()}.",
    )
    parser.add_argument(
        "source",
        choices=[*SOURCES, "all", "folder"],
        help="source slug, 'all', or 'folder' (your own records: see --name, --manifest)",
    )
    parser.add_argument(
        "--raw",
        type=Path,
        required=True,
        help="raw folder of the source (with 'all': the root holding one folder per source)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output root; the dump goes to OUT/<source>/")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="worker processes (default: %(default)s)"
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        help="records per part file (default: per source, ~1M samples per part, e.g. 200 10-s records)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete dump exists")
    parser.add_argument(
        "--rate",
        type=int,
        choices=(500, 100),
        default=500,
        help="PTB-XL: records500 (filename_hr, default) or records100 (filename_lr, resampled to 500 Hz)",
    )
    parser.add_argument("--folds", type=int, nargs="+", help="PTB-XL: keep only these strat_folds (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--name", help="folder: the name of your corpus (its dump goes to OUT/NAME/)")
    parser.add_argument(
        "--manifest",
        type=Path,
        help="folder: a CSV listing array files (.npy, .h5) with columns file, sampling_rate, leads",
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=10.0,
        help="folder: reject records shorter than this (default: %(default)s, one pre-training crop)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="first fetch the open-access raw files from PhysioNet / Zenodo into --raw (created if needed; "
        "resumable, checksum-verified; PTB-XL: only the --rate records; 'all': one folder per source). Needs "
        "network access and fails with a clear message without it; leave it out to dump a local copy in --raw",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    engine = {
        "workers": args.workers,
        "chunk_size": args.chunk_size,
        "force": args.force,
        "progress": not args.no_progress,
    }
    kwargs = {**engine, "rate": args.rate, "folds": args.folds}
    try:
        if args.download:
            if args.source != "all":
                targets = [(args.source, args.raw)]
            else:
                targets = [
                    (slug, find_source_dir(args.raw, spec) or args.raw / spec.folders[0])
                    for slug, spec in SOURCES.items()
                ]
            for slug, raw in targets:
                fetch(slug, raw, rate=args.rate, progress=not args.no_progress)
        if args.source == "folder":
            if not args.name:
                print("error: folder needs --name NAME (the dump goes to OUT/NAME/)", file=sys.stderr)
                return 2
            dump_folder(args.name, args.raw, args.out, manifest=args.manifest, min_seconds=args.min_seconds, **engine)
            return 0
        if args.source != "all":
            dump_source(args.source, args.raw, args.out, **kwargs)
            return 0
        outcomes = dump_all(args.raw, args.out, **kwargs)
    except (DataPrepError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = [slug for slug, outcome in outcomes if isinstance(outcome, str)]
    if failed:
        print(f"error: failed sources: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

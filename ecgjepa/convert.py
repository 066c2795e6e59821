"""``ecgjepa-convert <in> <out> [format=ecgjepa|original|original_minified]``: move checkpoints between this
project and the original ECG-JEPA, losslessly (see :mod:`ecgjepa.formats.original`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ecgjepa.cli import UsageError, command
from ecgjepa.formats.original import FORMATS, convert


@command("ecgjepa-convert")
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    fmt = "ecgjepa"
    for item in [a for a in args if a.startswith("format=")]:
        fmt = item.split("=", 1)[1]
        args.remove(item)
    if len(args) != 2:
        raise UsageError(f"usage: ecgjepa-convert IN OUT [format={'|'.join(FORMATS)}]")
    print(convert(args[0], args[1], fmt))


if __name__ == "__main__":
    main()

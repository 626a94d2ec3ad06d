"""``python -m af2.data.synth --out DIR --n 2000 --seed 0``: the old name of ``af2 synth``
(``--output`` works too). See ``af2 synth --help``."""

from __future__ import annotations

import sys

from af2.cli import legacy_main


def main(argv: list[str] | None = None) -> int:
    return legacy_main("synth", "python -m af2.data.synth", argv)


if __name__ == "__main__":
    sys.exit(main())

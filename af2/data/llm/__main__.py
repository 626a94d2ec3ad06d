"""``python -m af2.data.llm JOB --in IN.jsonl --out OUT.jsonl``: the old name of ``af2 gen``
(``--input``/``--output`` work too). See ``af2 gen --help``."""

from __future__ import annotations

import sys

from af2.cli import legacy_main


def main(argv: list[str] | None = None) -> int:
    return legacy_main("gen", "python -m af2.data.llm", argv)


if __name__ == "__main__":
    sys.exit(main())

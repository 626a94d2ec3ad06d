"""``python -m af2.eval {score,judge} --pred P.jsonl --ref MANIFEST.jsonl [--out OUT]``: the old
names of ``af2 score`` and ``af2 judge`` (``--input``/``--reference``/``--output`` work too).
See ``af2 score --help`` and ``af2 judge --help``."""

from __future__ import annotations

import sys

from af2.cli import VERBS, dispatch


def main(argv: list[str] | None = None) -> int:
    return dispatch(
        argv,
        prog="python -m af2.eval",
        verbs={v: VERBS[v] for v in ("score", "judge")},
        description=__doc__,
        legacy=True,
    )


if __name__ == "__main__":
    sys.exit(main())

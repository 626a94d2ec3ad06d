"""``python -m af2 VERB``: the same as the ``af2`` command (see af2/cli)."""

from __future__ import annotations

import sys

from af2.cli import main

if __name__ == "__main__":
    sys.exit(main())

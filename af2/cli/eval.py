"""``af2 eval --benchmark NAME --data PATH (--model DIR | --predictions P.jsonl) --output DIR``.

Evaluates a saved model (or a predictions file) on a public benchmark and prints the results
table; the flags and the run are af2/eval/benchmarks (``af2 eval --help``).
"""

from __future__ import annotations

from typing import Sequence

HELP = "a model or predictions on a public benchmark (MMAU, ClothoAQA, AudioCaps, Clotho, ...)"


def run_argv(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run: the benchmark command has its own parser (an af2.cli Parser)."""
    from af2.eval.benchmarks.__main__ import main

    return main(list(argv))

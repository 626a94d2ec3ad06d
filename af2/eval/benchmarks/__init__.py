"""Public benchmarks scored as their authors score them, and the paper-style results table.

One module per benchmark format: ``mmau`` (MMAU test-mini JSON), ``clothoaqa`` (ClothoAQA CSV),
``captions`` (AudioCaps and Clotho v2 CSVs; metrics in ``caption_metrics``), ``muchomusic``
(MuChoMusic CSV) and ``longaudio`` (LongAudioBench-style JSONL, LLM judge). ``items`` holds the
shared types, ``registry`` the benchmarks by name, ``table`` the results table and ``run`` the
entry point :func:`run_benchmark`. Command line: ``python -m af2.eval.benchmarks --help``.
"""

from af2.eval.benchmarks.items import BenchmarkInputError, Item, Row
from af2.eval.benchmarks.longaudio import JudgeSettings
from af2.eval.benchmarks.registry import BENCHMARKS
from af2.eval.benchmarks.run import Result, run_benchmark

__all__ = ["BENCHMARKS", "BenchmarkInputError", "Item", "JudgeSettings", "Result", "Row", "run_benchmark"]

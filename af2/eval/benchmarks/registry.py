"""The benchmarks ``af2 eval`` knows, by name: how to load each and how its authors score it.

A benchmark's ``load(data) -> list[Item]`` reads its public file format from ``data`` (the file,
or the folder holding it under its usual name); ``score(name, items, predictions, **context)
-> list[Row]`` returns its rows of the results table. ``context`` holds ``predictions_path``,
``work_dir``, ``tag`` and ``judge``, which only the judged benchmark uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from af2.eval.benchmarks import captions, clothoaqa, longaudio, mmau, muchomusic
from af2.eval.benchmarks.items import BenchmarkInputError


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str  # as the results table names it
    files: str  # what --data must hold
    load: Callable
    score: Callable


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("mmau", "MMAU test-mini", "mmau-test-mini.json", mmau.load, mmau.score),
        Benchmark("clothoaqa", "ClothoAQA", "clotho_aqa_test.csv", clothoaqa.load, clothoaqa.score),
        Benchmark("audiocaps", "AudioCaps", "test.csv", captions.load_audiocaps, captions.score),
        Benchmark("clotho", "Clotho v2", "clotho_captions_evaluation.csv", captions.load_clotho, captions.score),
        Benchmark("muchomusic", "MuChoMusic", "muchomusic.csv", muchomusic.load, muchomusic.score),
        Benchmark("longaudiobench", "LongAudioBench", "longaudiobench.jsonl", longaudio.load, longaudio.score),
    )
}


def get(name: str) -> Benchmark:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BENCHMARKS:
        raise BenchmarkInputError(f"--benchmark: unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})")
    return BENCHMARKS[key]

"""Data loader throughput: windows per second through af2.data.loader with 2 workers.

Run: pytest benchmarks/test_data_bench.py -s
A folder of 36 clips of 5-30 s in mixed formats (16 kHz mono WAV, 44.1 kHz stereo FLAC,
22.05 kHz MP3) goes through the whole pipeline each round: header probe, seek/decode,
mixdown, soxr resampling to 16 kHz, windowing, tokenising, labels, dynamic batching
(max_windows=3, 12 windows per batch). Prints windows/s and audio-seconds/s.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from af2.data.loader import make_loader
from af2.data.manifest import write_manifest
from af2.text.tokens import tiny_tokenizer

FORMATS = [("wav", 16000, 1, "PCM_16"), ("flac", 44100, 2, "PCM_16"), ("mp3", 22050, 1, "MPEG_LAYER_III")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_audio")
    rng = np.random.default_rng(0)
    recs = []
    for i in range(36):
        ext, sr, ch, subtype = FORMATS[i % 3]
        seconds = float(rng.uniform(5, 30))
        x = (0.1 * rng.standard_normal((int(seconds * sr), ch))).astype(np.float32)
        sf.write(str(root / f"{i}.{ext}"), x, sr, subtype=subtype)
        recs.append({"audio": f"{i}.{ext}", "prompt": "What do you hear?", "answer": "noise", "id": str(i)})
    write_manifest(root / "manifest.jsonl", recs)
    return root


def test_loader_windows_per_second(benchmark, folder):
    loader = make_loader(
        folder / "manifest.jsonl", tiny_tokenizer(), max_windows=3, max_windows_per_batch=12, num_workers=2, seed=0
    )
    windows = sum(loader.sampler.counts)
    epoch = iter(range(1000))

    def run():
        loader.set_epoch(next(epoch))
        return sum(int(b["num_windows"].sum()) for b in loader)

    benchmark.group = "data loader (2 workers, cpu)"
    delivered = benchmark.pedantic(run, warmup_rounds=1, rounds=3, iterations=1)
    assert delivered == windows and not loader.report.skipped
    median = benchmark.stats.stats.median
    seconds = sum(min(30.0, sf.info(str(folder / r)).duration) for r in [f"{i}.{FORMATS[i % 3][0]}" for i in range(36)])
    line = (
        f"af2.data loader: {windows / median:.1f} windows/s ({seconds / median:.0f} s of audio per s) "
        f"with 2 workers; {windows} windows per epoch in {median:.2f} s"
    )
    benchmark.extra_info["windows_per_second"] = windows / median
    print("\n" + line)

"""End to end: a folder of mixed-format audio + JSONL -> batches, bad files reported."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from af2.audio.io import read_audio
from af2.data.loader import make_loader
from af2.data.manifest import write_manifest
from tests.data.audio_files import tone, truncate, write

GOOD = {"wav": 5.0, "flac": 12.0, "ogg": 3.0, "mp3": 8.0}
BAD_KINDS = {
    "missing": 1,
    "corrupt": 2,
    "empty": 1,
    "unsupported_format": 1,
    "non_finite": 1,
    "too_many_channels": 1,
    "bad_sample_rate": 1,
    "bad_range": 1,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_audio")
    (root / "audio").mkdir()
    recs = []

    def rec(name, **kw):
        recs.append(
            {
                "audio": f"audio/{name}",
                "prompt": f"What is in {name}?",
                "answer": "a tone",
                "id": kw.pop("id", name),
                **kw,
            }
        )

    for ext, sec in GOOD.items():
        sr, ch = (44100, 2) if ext == "flac" else (16000, 1)
        write(root / "audio" / f"good.{ext}", tone(sec, sr, 440.0, channels=ch), sr)
        rec(f"good.{ext}")
    write(root / "audio" / "long.wav", tone(40.0, 16000, 220.0))
    rec("long.wav")  # truncated to 30 s, reported
    rec("long.wav", id="long-span", start=12.0, end=20.0)  # a span: 8 s
    rec("nothing_here.wav")
    truncate(write(root / "audio" / "t.wav", tone(3.0)), root / "audio" / "truncated.wav")
    rec("truncated.wav")
    flac = bytearray(write(root / "audio" / "c.flac", tone(3.0)).read_bytes())
    flac[len(flac) // 3 : len(flac) // 3 + 2000] = bytes(2000)
    (root / "audio" / "corrupt.flac").write_bytes(bytes(flac))
    rec("corrupt.flac")
    write(root / "audio" / "empty.wav", np.zeros(0, np.float32))
    rec("empty.wav")
    (root / "audio" / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(500))
    rec("song.m4a")
    nan = tone(2.0)
    nan[100] = np.nan
    write(root / "audio" / "nan.wav", nan, subtype="FLOAT")
    rec("nan.wav")
    write(root / "audio" / "many.wav", np.zeros((1600, 40), np.float32))
    rec("many.wav")
    sf.write(str(root / "audio" / "rate.wav"), np.zeros(100, np.float32), 1)
    rec("rate.wav")
    rec("good.wav", id="past-end", start=1.0, end=60.0)
    write_manifest(root / "manifest.jsonl", recs)
    with open(root / "manifest.jsonl", "a") as f:
        f.write("{not json\n")
    return root


GOOD_IDS = {f"good.{e}" for e in GOOD} | {"long.wav", "long-span"}


@pytest.mark.parametrize("workers", [0, 2])
def test_folder_to_batches_with_report(folder, tokenizer, workers, caplog):
    loader = make_loader(
        folder / "manifest.jsonl", tokenizer, max_windows=3, max_windows_per_batch=6, num_workers=workers, seed=1
    )
    for epoch in range(2):
        loader.set_epoch(epoch)
        with caplog.at_level(logging.WARNING, logger="af2.data"):
            batches = list(loader)
        assert len(batches) == len(loader)  # every planned batch, empty ones included
        ids = [i for b in batches for i in b["ids"]]
        assert sorted(ids) == sorted(GOOD_IDS)
        for b in batches:
            assert b["audio_windows"].shape[0] * b["audio_windows"].shape[1] <= 6
            assert b["input_ids"].shape[0] == len(b["ids"]) == b["audio_window_mask"].shape[0]
        report = loader.report
        assert report.epoch == epoch and report.samples == len(GOOD_IDS)
        assert dict(report.counts) == BAD_KINDS
        assert report.truncated == ["long.wav"]
        assert len(report.manifest_errors) == 1 and "invalid JSON" in report.manifest_errors[0]
        assert f"epoch {epoch}: 6 samples" in caplog.text and "[missing] nothing_here.wav" in caplog.text
        caplog.clear()


def test_batch_audio_equals_read_audio(folder, tokenizer):
    loader = make_loader(folder / "manifest.jsonl", tokenizer, max_windows=3, num_workers=0, shuffle=False)
    rows = {i: (b, k) for b in loader for k, i in enumerate(b["ids"])}
    b, k = rows["good.flac"]  # 44.1 kHz stereo, 12 s -> 2 windows
    expected = read_audio(folder / "audio" / "good.flac")
    got = b["audio_windows"][k].reshape(-1)
    assert b["num_windows"][k] == 2 and torch.equal(got[: expected.numel()], expected)
    assert not got[expected.numel() :].any()
    b, k = rows["long-span"]
    assert b["num_windows"][k] == 1
    span = read_audio(folder / "audio" / "long.wav", start=12.0, end=20.0)
    assert torch.equal(b["audio_windows"][k, 0, : span.numel()], span)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_share_the_folder_exactly_once(folder, tokenizer, world):
    ids, steps = [], set()
    for rank in range(world):
        loader = make_loader(
            folder / "manifest.jsonl",
            tokenizer,
            max_windows=3,
            max_windows_per_batch=3,
            num_workers=0,
            num_replicas=world,
            rank=rank,
            seed=4,
        )
        batches = list(loader)
        steps |= {len(loader), len(batches)}
        ids += [i for b in batches for i in b["ids"]]
    assert sorted(ids) == sorted(GOOD_IDS) and len(steps) == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_two_ranks_get_equal_batch_counts_with_a_missing_file(tmp_path, tokenizer, workers):
    # 8 one-window clips, one missing, one sample per batch: the missing file's batch is empty
    # but still yielded, so both ranks take 4 batches (a distributed loop would hang on 4 vs 3).
    for k in range(7):
        write(tmp_path / f"c{k}.wav", tone(1.0))
    write_manifest(
        tmp_path / "m.jsonl",
        [{"audio": f"c{k}.wav", "prompt": "p?", "answer": "a", "id": f"c{k}"} for k in range(7)]
        + [{"audio": "gone.wav", "prompt": "p?", "answer": "a", "id": "gone"}],
    )
    counts, empty = [], []
    for rank in range(2):
        loader = make_loader(
            tmp_path / "m.jsonl",
            tokenizer,
            max_windows=1,
            max_windows_per_batch=1,
            num_workers=workers,
            num_replicas=2,
            rank=rank,
            seed=3,
        )
        batches = list(loader)
        counts.append(len(batches))
        for b in batches:
            if not b["ids"]:
                assert b["input_ids"].shape == (0, 0) and b["audio_windows"].shape[0] == 0
                empty.append((rank, [s.id for s in b["skipped"]]))
        assert loader.report.empty_batches == sum(r == rank for r, _ in empty) and loader.report.complete
    assert counts == [4, 4]
    assert [ids for _, ids in empty] == [["gone"]]


def test_report_of_an_epoch_stopped_early(folder, tokenizer, caplog):
    loader = make_loader(
        folder / "manifest.jsonl", tokenizer, max_windows=3, max_windows_per_batch=3, num_workers=0, seed=2
    )
    assert len(loader) > 2
    with caplog.at_level(logging.INFO, logger="af2.data"):
        for k, _ in enumerate(loader):
            if k == 1:
                break
    report = loader.report
    assert report is not None and not report.complete and report.batches + report.empty_batches == 2
    assert "epoch 0 (stopped early): " in caplog.text
    loader.set_epoch(1)
    list(loader)
    assert loader.report.complete and loader.report.epoch == 1 and len(loader.reports) == 2

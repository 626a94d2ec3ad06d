"""AudioQADataset: window counts from headers, truncation, normalisation, never raising."""

from __future__ import annotations

import logging

import pytest

from af2.data import dataset as D
from af2.data.manifest import load_manifest, write_manifest
from af2.data.report import Skipped
from tests.data.audio_files import tone, write


@pytest.fixture
def manifest(tmp_path):
    write(tmp_path / "a.wav", tone(25.0, amp=0.25))
    write(tmp_path / "b.flac", tone(4.0, 44100, amp=0.5), 44100)
    write_manifest(
        tmp_path / "m.jsonl",
        [
            {"audio": "a.wav", "prompt": "p", "answer": "a", "id": "a"},
            {"audio": "a.wav", "prompt": "p", "answer": "a", "id": "a-tail", "start": 21.0},
            {"audio": "b.flac", "prompt": "p", "answer": "a", "id": "b"},
            {"audio": "gone.wav", "prompt": "p", "answer": "a", "id": "gone"},
        ],
    )
    return tmp_path / "m.jsonl"


def test_window_counts_and_truncation(manifest, caplog):
    ds = D.AudioQADataset.from_manifest(manifest, max_windows=2)
    assert ds.window_counts() == [2, 1, 1, 1]  # unreadable files count 1 and are skipped on load
    with caplog.at_level(logging.WARNING, logger="af2.data.dataset"):
        item = ds[0]
    assert item.truncated and item.seconds == pytest.approx(25.0) and item.wave.numel() == 20 * 16000
    assert "keeping the first 20.0 s" in caplog.text
    tail = ds[1]
    assert not tail.truncated and tail.wave.numel() == 4 * 16000
    assert ds[2].wave.numel() == 4 * 16000
    gone = ds[3]
    assert isinstance(gone, Skipped) and gone.kind == "missing" and gone.id == "gone"


def test_peak_normalize(manifest):
    ds = D.AudioQADataset(load_manifest(manifest).samples, max_windows=3, peak_normalize=True)
    assert float(ds[0].wave.abs().max()) == pytest.approx(1.0)
    assert float(D.AudioQADataset(ds.samples, max_windows=3)[0].wave.abs().max()) == pytest.approx(0.25, abs=1e-3)


def test_unexpected_errors_are_reported_not_raised(manifest, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(D, "read_audio", boom)
    with caplog.at_level(logging.ERROR):
        item = D.AudioQADataset.from_manifest(manifest, max_windows=3)[0]
    assert isinstance(item, Skipped) and item.kind == "unexpected" and "disk on fire" in item.reason
    assert "unexpected error reading sample a" in caplog.text


def test_truncated_long_audio_can_be_skipped(tmp_path):
    write(tmp_path / "long.wav", tone(25.0))
    write_manifest(
        tmp_path / "m.jsonl",
        [
            {"audio": "long.wav", "prompt": "p", "answer": "a", "id": "scene", "long_audio": True},
            {"audio": "long.wav", "prompt": "p", "answer": "a", "id": "plain"},
            {"audio": "long.wav", "prompt": "p", "answer": "a", "id": "scene-span", "long_audio": True, "end": 15.0},
        ],
    )
    keep = D.AudioQADataset.from_manifest(tmp_path / "m.jsonl", max_windows=2)
    assert [keep[i].truncated for i in range(3)] == [True, True, False]  # default: cut to fit
    skip = D.AudioQADataset.from_manifest(tmp_path / "m.jsonl", max_windows=2, skip_truncated_long_audio=True)
    scene = skip[0]
    assert isinstance(scene, Skipped) and scene.kind == "truncated_long_audio" and "25.0 s" in scene.reason
    assert skip[1].truncated and not skip[2].truncated  # unmarked samples are cut; a fitting span is kept
    assert not isinstance(
        D.AudioQADataset.from_manifest(tmp_path / "m.jsonl", max_windows=3, skip_truncated_long_audio=True)[0], Skipped
    )

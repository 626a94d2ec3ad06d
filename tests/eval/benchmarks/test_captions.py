"""AudioCaps and Clotho: several references per clip; CIDEr-D checked by hand; SPICE skipped
with its reason where its models are absent."""

from __future__ import annotations

import importlib.util
import math

import pytest

from af2.eval.benchmarks import caption_metrics, captions
from af2.eval.benchmarks.items import BenchmarkInputError
from tests.eval.benchmarks.conftest import predictions, write_csv

needs_coco = pytest.mark.skipif(
    importlib.util.find_spec("pycocoevalcap") is None, reason="pycocoevalcap is not installed (the eval extra)"
)


def test_audiocaps_rows_of_one_clip_are_its_references(audiocaps_dir):
    first, second = captions.load_audiocaps(audiocaps_dir)
    assert first.id == "abc123" and first.references == (
        "A dog barks loudly.",
        "A dog is barking.",
        "Dog barking repeatedly",
    )
    assert first.audio == audiocaps_dir / "audio" / "abc123.wav"
    assert second.audio == audiocaps_dir / "audio" / "Yxyz789.wav"  # the "Y" prefix of AudioSet downloads
    assert second.references == ("Rain falls on a roof.", "Heavy rain is falling.")
    assert first.prompt == captions.PROMPT


def test_clotho_five_captions_per_row(clotho_dir, tmp_path):
    birds, engine = captions.load_clotho(clotho_dir)
    assert birds.id == "birds.wav" and len(birds.references) == 5
    assert engine.audio == clotho_dir / "evaluation" / "engine.wav"
    header = ["file_name", *(f"caption_{k}" for k in range(1, 5))]
    write_csv(tmp_path / "clotho_captions_evaluation.csv", header, [["a.wav", "x", "y", "z", "w"]])
    with pytest.raises(BenchmarkInputError, match="no column 'caption_5'"):
        captions.load_clotho(tmp_path)
    write_csv(tmp_path / "clotho_captions_evaluation.csv", [*header, "caption_5"], [["a.wav", "", "", "", "", " "]])
    with pytest.raises(BenchmarkInputError, match="'a.wav' has no caption"):
        captions.load_clotho(tmp_path)


@needs_coco
def test_cider_d_by_hand():
    # Two clips, so every n-gram that occurs has idf log(2). Clip x: "a" against "a b": the
    # unigram cosine is 1/sqrt(2), no bigram, and the length penalty exp(-1/72) (one bigram less);
    # 10 * mean over n = 1..4. Clip y is its reference: unigram and bigram cosines 1, no 3-/4-grams.
    corpus, each = caption_metrics.cider_d({"x": ["a b"], "y": ["c d"]}, {"x": "a", "y": "c d"})
    x = 10 * (math.exp(-1 / 72) / math.sqrt(2)) / 4
    assert each == {"x": pytest.approx(x), "y": pytest.approx(5.0)}
    assert corpus == pytest.approx((x + 5.0) / 2)


@needs_coco
def test_cider_d_is_zero_for_a_single_clip_and_for_unrelated_text():
    assert caption_metrics.cider_d({"x": ["a dog barks"]}, {"x": "a dog barks"})[0] == 0.0  # idf log(1)
    assert caption_metrics.cider_d({"x": ["a dog barks"], "y": ["rain"]}, {"x": "music", "y": "wind"})[0] == 0.0


@needs_coco
def test_tokenizer_lowercases_and_drops_punctuation():
    tokens, how = caption_metrics.tokenize({"x": ["A dog's bark, LOUD!"]})
    assert tokens == {"x": ["a dog 's bark loud"]} and how
    assert caption_metrics.simple_tokens("A dog's bark, LOUD!") == "a dog 's bark loud"


@needs_coco
def test_rows_and_skipped_spice(clotho_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(caption_metrics, "spice_unavailable", lambda: "needs Java (no 'java' on PATH)")
    items = captions.load_clotho(clotho_dir)
    preds = {"birds.wav": "Birds chirp in a forest.", "engine.wav": "An engine idles."}
    rows = captions.score("Clotho v2", items, preds)
    cider, spice, spider = rows
    assert (cider.metric, cider.n, cider.missing) == ("CIDEr-D", 2, 0) and cider.score > 1.0
    assert spice.score is None and spice.note == "skipped: needs Java (no 'java' on PATH)"
    assert spider.metric == "SPIDEr" and spider.score is None and "skipped" in spider.note
    one = captions.score("Clotho v2", items, {"birds.wav": "Birds chirp in a forest."})[0]
    assert (one.n, one.missing) == (1, 1)


@needs_coco
def test_baseline_side_by_side(audiocaps_dir, tmp_path, monkeypatch):
    from af2.eval.benchmarks import run_benchmark

    monkeypatch.setattr(caption_metrics, "spice_unavailable", lambda: "needs Java (no 'java' on PATH)")
    ours = predictions(tmp_path / "ours.jsonl", {"abc123": "A dog is barking.", "xyz789": "Heavy rain is falling."})
    theirs = predictions(tmp_path / "theirs.jsonl", {"abc123": "Music plays.", "xyz789": "Rain."})
    result = run_benchmark("audiocaps", audiocaps_dir, None, tmp_path / "out", predictions=ours, baseline=theirs)
    assert result.rows[0].score > result.baseline_rows[0].score
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert lines[0] == "| benchmark | metric | n | missing | score | baseline n | baseline | note |"
    assert lines[2].startswith(
        f"| AudioCaps | CIDEr-D | 2 | 0 | {result.rows[0].score:.3f} | 2 | {result.baseline_rows[0].score:.3f} |"
    )
    assert "skipped: needs Java" in lines[3]


@needs_coco
def test_spice_unavailable_says_why(monkeypatch):
    monkeypatch.setattr(caption_metrics.shutil, "which", lambda name: None)
    assert caption_metrics.spice_unavailable() == "needs Java (no 'java' on PATH)"
    with pytest.raises(caption_metrics.Unavailable, match="needs Java"):
        caption_metrics.spice({"x": ["a"]}, {"x": "a"})
    assert caption_metrics.tokenize({"x": ["Hi, there."]}) == ({"x": ["hi there"]}, "python (no Java)")


def test_without_pycocoevalcap_every_metric_is_skipped(clotho_dir, monkeypatch):
    def absent():
        raise caption_metrics.Unavailable("pycocoevalcap is not installed (pip install 'af2[eval]')")

    monkeypatch.setattr(caption_metrics, "_package", absent)
    rows = captions.score("Clotho v2", captions.load_clotho(clotho_dir), {"birds.wav": "Birds sing."})
    assert [(r.metric, r.score) for r in rows] == [("CIDEr-D", None), ("SPICE", None), ("SPIDEr", None)]
    assert rows[0].note == "skipped: pycocoevalcap is not installed (pip install 'af2[eval]')" == rows[1].note

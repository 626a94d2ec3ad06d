"""Audio captioning: AudioCaps and Clotho v2, scored with CIDEr-D, SPICE and SPIDEr.

AudioCaps: ``test.csv`` (or ``val.csv``) with columns ``audiocap_id,youtube_id,start_time,caption``,
one row per caption and several rows (five in test) per clip. The clip's audio is
``{youtube_id}.wav`` (also ``Y{youtube_id}``, ``{youtube_id}_{start_time}``, in ``.wav`` or
``.flac``) in the CSV's folder or in ``audio/`` or ``test/`` beside it; the item id is the
``youtube_id``.

Clotho v2: ``clotho_captions_evaluation.csv`` with columns ``file_name,caption_1,...,caption_5``,
one row per clip; audio in ``evaluation/`` (or beside the CSV); the item id is the file name.

Every clip is asked the same prompt (``PROMPT``). Scores are over the clips with a prediction
(``caption_metrics``); per-clip CIDEr-D is kept in the JSON details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from af2.eval.benchmarks import caption_metrics
from af2.eval.benchmarks.items import BenchmarkInputError, Item, Row, find_audio, find_file, predicted, read_csv

PROMPT = "Describe the audio in one sentence."
AUDIOCAPS_FILES = ("test.csv", "val.csv")
CLOTHO_FILES = ("clotho_captions_evaluation.csv", "clotho_captions_validation.csv")


def load_audiocaps(data: Path) -> list[Item]:
    path = find_file(data, AUDIOCAPS_FILES, "AudioCaps CSV")
    clips: dict[str, dict] = {}
    for row in read_csv(path, ("audiocap_id", "youtube_id", "start_time", "caption")):
        clip = clips.setdefault(row["youtube_id"], {"start": row["start_time"], "captions": []})
        if row["caption"].strip():
            clip["captions"].append(row["caption"].strip())
    items = []
    for yid, clip in clips.items():
        if not clip["captions"]:
            raise BenchmarkInputError(f"{path}: youtube_id {yid!r} has no caption")
        start = clip["start"].strip()
        stems = [yid, f"Y{yid}", f"{yid}_{start}", f"Y{yid}_{start}"]
        names = [f"{d}/{s}{ext}" for d in (".", "audio", "test") for s in stems for ext in (".wav", ".flac")]
        items.append(
            Item(yid, find_audio(path.parent, names), PROMPT, tuple(clip["captions"]), extra={"start_time": start})
        )
    return items


def load_clotho(data: Path) -> list[Item]:
    path = find_file(data, CLOTHO_FILES, "Clotho captions CSV")
    columns = ("file_name", *(f"caption_{k}" for k in range(1, 6)))
    items, seen = [], set()
    for row in read_csv(path, columns):
        name = row["file_name"].strip()
        if name in seen:
            raise BenchmarkInputError(f"{path}: file_name {name!r} appears twice")
        seen.add(name)
        refs = tuple(row[c].strip() for c in columns[1:] if row[c].strip())
        if not refs:
            raise BenchmarkInputError(f"{path}: {name!r} has no caption")
        items.append(Item(name, find_audio(path.parent, [f"evaluation/{name}", name]), PROMPT, refs))
    return items


def score(name: str, items: Sequence[Item], predictions: dict[str, str], **_) -> list[Row]:
    pairs, missing = predicted(items, predictions)
    captions = {it.id: list(it.references) for it, _ in pairs}
    captions.update({f"{it.id}\0candidate": [p] for it, p in pairs})
    tokens, tokenizer = caption_metrics.tokenize(captions)
    refs = {it.id: tokens[it.id] for it, _ in pairs}
    cands = {it.id: tokens[f"{it.id}\0candidate"][0] for it, _ in pairs}
    rows, cider = [], None
    try:
        if not pairs:
            raise caption_metrics.Unavailable("no clip has a prediction")
        cider, per_clip = caption_metrics.cider_d(refs, cands)
        rows.append(Row(name, "CIDEr-D", len(pairs), missing, cider, f"tokenizer: {tokenizer}", {"per_clip": per_clip}))
    except caption_metrics.Unavailable as why:
        rows.append(Row(name, "CIDEr-D", len(pairs), missing, None, f"skipped: {why}"))
    try:
        if not pairs:
            raise caption_metrics.Unavailable("no clip has a prediction")
        spice, _ = caption_metrics.spice(refs, cands)
        rows.append(Row(name, "SPICE", len(pairs), missing, spice, f"tokenizer: {tokenizer}"))
        rows.append(
            Row(
                name,
                "SPIDEr",
                len(pairs),
                missing,
                None if cider is None else (cider + spice) / 2,
                "mean of CIDEr-D and SPICE",
            )
        )
    except caption_metrics.Unavailable as why:
        rows.append(Row(name, "SPICE", len(pairs), missing, None, f"skipped: {why}"))
        rows.append(Row(name, "SPIDEr", len(pairs), missing, None, "skipped: needs SPICE"))
    return rows

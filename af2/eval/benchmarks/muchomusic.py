"""MuChoMusic: four-option music questions on MusicCaps and Song Describer clips.

File: ``muchomusic.csv`` as the benchmark publishes it, with the columns its code reads:
``dataset_identifier`` (``{ytid}_{n}.json`` for MusicCaps, ``{track_id}.json`` for SDD),
``dataset`` (``musiccaps`` or ``sdd``), ``question``, ``correct_answer``,
``distractor_1_answer`` .. ``distractor_3_answer``, and optionally ``genre``,
``music_reasoning``, ``music_knowledge``. Audio follows the benchmark's layout:
``musiccaps/audio/[{ytid}]-[{start}-{end}].wav`` with the times from
``musiccaps/musiccaps-public.csv`` (``ytid,start_s,end_s``), and ``sdd/audio/{path}`` with
``.mp3`` replaced by ``.2min.mp3``, ``path`` from ``sdd/song_describer.csv`` (``track_id,path``).

The options are shuffled per question, as the benchmark does, with a seed taken from the item id
(so every run asks the same order). Scoring is the benchmark's ``extract_responses``: the text
after "The correct answer is:" picks option X when X is the only one of the letters A-D in it;
otherwise the first option whose lower-cased text it contains; otherwise it is unanswered
(counted, and wrong).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from af2.eval.benchmarks.items import BenchmarkInputError, Item, Row, find_file, predicted, rate, read_csv

FILES = ("muchomusic.csv", "data/muchomusic.csv")
COLUMNS = (
    "dataset_identifier",
    "dataset",
    "question",
    "correct_answer",
    "distractor_1_answer",
    "distractor_2_answer",
    "distractor_3_answer",
)
LETTERS = ("A", "B", "C", "D")
PREFIX = "The correct answer is:"


def _optional_csv(path: Path, key: str, columns: Sequence[str]) -> dict[str, dict]:
    return {row[key].strip(): row for row in read_csv(path, (key, *columns))} if path.is_file() else {}


def _audio(root: Path, row: dict, musiccaps: dict, sdd: dict, where: str) -> Path:
    ident = row["dataset_identifier"].strip().removesuffix(".json")
    if row["dataset"] == "musiccaps":
        ytid = "_".join(ident.split("_")[:-1])
        clip = musiccaps.get(ytid)
        if clip is None:
            raise BenchmarkInputError(f"{where}: ytid {ytid!r} is not in musiccaps/musiccaps-public.csv")
        try:
            start, end = int(float(clip["start_s"])), int(float(clip["end_s"]))
        except ValueError as err:
            raise BenchmarkInputError(f"{where}: musiccaps-public.csv has bad times for {ytid!r} ({err})") from err
        return root / "musiccaps" / "audio" / f"[{ytid}]-[{start}-{end}].wav"
    if row["dataset"] == "sdd":
        track = sdd.get(ident)
        if track is None:
            raise BenchmarkInputError(f"{where}: track_id {ident!r} is not in sdd/song_describer.csv")
        return root / "sdd" / "audio" / track["path"].replace(".mp3", ".2min.mp3")
    raise BenchmarkInputError(f"{where}: dataset {row['dataset']!r} is neither 'musiccaps' nor 'sdd'")


def load(data: Path) -> list[Item]:
    path = find_file(data, FILES, "MuChoMusic CSV")
    root = path.parent
    musiccaps = _optional_csv(root / "musiccaps" / "musiccaps-public.csv", "ytid", ("start_s", "end_s"))
    sdd = _optional_csv(root / "sdd" / "song_describer.csv", "track_id", ("path",))
    items = []
    for k, row in enumerate(read_csv(path, COLUMNS)):
        answers = [row[c].strip() for c in COLUMNS[3:]]
        item_id = f"{k}-{row['dataset_identifier'].strip().removesuffix('.json')}"
        order = random.Random(f"muchomusic:{item_id}").sample(range(4), 4)
        choices = tuple(answers[j] for j in order)
        items.append(
            Item(
                item_id,
                _audio(root, row, musiccaps, sdd, f"{path}:{k + 2}"),
                row["question"].strip(),
                (answers[0],),
                choices,
                row.get("genre") or None,
                {
                    "answer_index": order.index(0),
                    "dataset": row["dataset"],
                    "music_reasoning": row.get("music_reasoning"),
                    "music_knowledge": row.get("music_knowledge"),
                },
            )
        )
    return items


def extract_response(output: str, options: Sequence[str]) -> int:
    """The benchmark's rule: the option the output picks, or -1."""
    output = output.split(PREFIX)[-1].strip()
    letters = set(LETTERS).intersection(output)
    if len(letters) == 1:
        return LETTERS.index(letters.pop())
    lowered = output.lower().strip()
    for i, option in enumerate(options):
        if option.lower().strip() in lowered:
            return i
    return -1


def score(name: str, items: Sequence[Item], predictions: dict[str, str], **_) -> list[Row]:
    pairs, missing = predicted(items, predictions)
    picks = [extract_response(p, it.choices) for it, p in pairs]
    right = sum(pick == it.extra["answer_index"] for pick, (it, _) in zip(picks, pairs))
    unanswered = picks.count(-1)
    return [
        Row(
            name,
            "accuracy %",
            len(pairs),
            missing,
            rate(right, len(pairs)),
            f"{unanswered} unanswered" if unanswered else "",
            {"correct": right, "unanswered": unanswered},
        )
    ]

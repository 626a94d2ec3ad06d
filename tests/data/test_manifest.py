"""Manifests: round trip, relative paths, and every bad line reported with its number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from af2.data.manifest import ManifestValidationError, Sample, load_manifest, write_manifest


def test_round_trip_and_relative_paths(tmp_path):
    records = [
        {
            "audio": "a/x.wav",
            "prompt": "How many?",
            "answer": "3",
            "skill": "counting",
            "id": "s0",
            "choices": ["2", "3"],
            "start": 1.5,
            "end": 4.0,
            "qtype": "counting.easy",
        },
        {"audio": str(tmp_path / "abs.flac"), "prompt": "What?", "answer": "a dog"},
    ]
    path = tmp_path / "sub" / "m.jsonl"
    assert write_manifest(path, records) == 2
    res = load_manifest(path, strict=True)
    assert res.ok and len(res.samples) == 2
    s0, s1 = res.samples
    assert s0.audio == (tmp_path / "sub" / "a" / "x.wav").resolve()
    assert (s0.start, s0.end, s0.skill, s0.choices, s0.line) == (1.5, 4.0, "counting", ["2", "3"], 1)
    assert s0.extra == {"qtype": "counting.easy"}
    assert s1.audio == tmp_path / "abs.flac" and s1.id == "line2" and s1.start is None
    # Samples written back reload identically (paths inside the folder stay relative).
    again = tmp_path / "sub" / "again.jsonl"
    write_manifest(again, res.samples)
    assert json.loads(again.read_text().splitlines()[0])["audio"] == "a/x.wav"
    assert [(s.audio, s.prompt, s.answer, s.extra) for s in load_manifest(again).samples] == [
        (s.audio, s.prompt, s.answer, s.extra) for s in res.samples
    ]


BAD_LINES = [
    ('{"audio": "x.wav", "prompt": "p"', "invalid JSON"),
    ('["x.wav", "p", "a"]', "expected a JSON object"),
    ('{"prompt": "p", "answer": "a"}', "missing required key 'audio'"),
    ('{"audio": "x.wav", "answer": "a"}', "missing required key 'prompt'"),
    ('{"audio": "x.wav", "prompt": "p", "answer": 3}', "'answer' must be a string"),
    ('{"audio": "x.wav", "prompt": " ", "answer": "a"}', "'prompt' is empty"),
    ('{"audio": "x.wav", "prompt": "p", "answer": "a", "start": "1"}', "'start' must be a number"),
    ('{"audio": "x.wav", "prompt": "p", "answer": "a", "start": -1}', "finite number >= 0"),
    ('{"audio": "x.wav", "prompt": "p", "answer": "a", "start": 5, "end": 2}', "must be greater than 'start'"),
    ('{"audio": "x.wav", "prompt": "p", "answer": "a", "skill": "dancing"}', "unknown skill 'dancing'"),
    ('{"audio": "x.wav", "prompt": "p", "answer": "a", "choices": ["b", "c"]}', "not one of the choices"),
    ('{"audio": "x.wav", "prompt": "p", "answer": "a", "choices": "a"}', "list of strings"),
    ('{"audio": "x.wav", "prompt": "p", "answer": "a", "id": "dup"}', None),
    ('{"audio": "y.wav", "prompt": "p", "answer": "a", "id": "dup"}', "duplicate id 'dup' (first on line"),
    (b'{"audio": "z.wav", "prompt": "caf\xe9?", "answer": "a"}', "not valid UTF-8 (byte 34 of the line"),  # Latin-1
    ('{"audio": "\u00e9t\u00e9.wav", "prompt": "Qu\u00e9 pasa?", "answer": "\u2028 a"}', None),  # good UTF-8 after it
]


def _write_bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    lines = [t if isinstance(t, bytes) else t.encode() for t, _ in BAD_LINES]
    path.write_bytes(b'{"audio": "ok.wav", "prompt": "p", "answer": "a"}\n\n' + b"\n".join(lines) + b"\n")
    return path


def test_every_bad_line_is_reported_with_line_number_and_reason(tmp_path):
    res = load_manifest(_write_bad(tmp_path))
    expected = {i + 3: reason for i, (_, reason) in enumerate(BAD_LINES) if reason}
    got = {e.line: e.reason for e in res.errors}
    assert sorted(got) == sorted(expected)
    for line, reason in expected.items():
        assert reason in got[line], (line, got[line])
    assert [s.line for s in res.samples] == [1, 15, 18]
    assert str(res.errors[-1]).startswith("line 17: not valid UTF-8")
    assert res.samples[-1].prompt == "Qu\u00e9 pasa?" and res.samples[-1].answer == "\u2028 a"


def test_strict_raises_listing_every_bad_line(tmp_path):
    with pytest.raises(ManifestValidationError) as info:
        load_manifest(_write_bad(tmp_path), strict=True)
    assert len(info.value.errors) == sum(1 for _, r in BAD_LINES if r)
    assert "line 3: invalid JSON" in str(info.value) and "line 16: duplicate id" in str(info.value)


def test_sample_fields():
    s = Sample(Path("a.wav"), "p", "a", None, None, None, "id", None, 1)
    assert s.extra == {}

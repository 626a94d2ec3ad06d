"""The one JSONL reader: every bad line is an error with its line number, never a crash; a
missing or unreadable file is an ``InputError``. Property-based: random bytes and random JSON
values per line."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from af2.data.manifest import load_manifest
from af2.errors import InputError
from af2.jsonl import cut_torn_tail, good_objects, read_jsonl

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
good_objects_st = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
# Bytes that are never a line of valid JSON: bad UTF-8, broken JSON, a lone surrogate, a huge int, deep nesting.
bad_lines = st.sampled_from(
    [
        b"\xff\xfe",
        b'{"a": "\xc3\x28"}',
        b"{not json",
        b"[1, 2",
        b'"\\ud800"',
        b'{"a": "\\udc00x"}',
        b"9" * 5000,
        b"[" * 100_000,
        b'{"a": 1} trailing',
    ]
) | st.binary(min_size=1, max_size=30).filter(lambda b: not _is_json(b))


def _is_json(raw: bytes) -> bool:
    """True unless ``raw`` is one line the reader must report: a line break would make it
    several lines, whitespace a blank line, and a JSON object that UTF-8 can hold a good one."""
    if b"\n" in raw or b"\r" in raw:
        return True
    try:
        text = raw.decode("utf-8")
    except UnicodeError:
        return False
    if not text.strip():
        return True
    try:
        value = json.loads(text)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeError):
        return False
    return isinstance(value, dict)


def _encode(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


@SETTINGS
@given(
    st.lists(st.one_of(good_objects_st.map(lambda v: ("good", v)), bad_lines.map(lambda b: ("bad", b))), max_size=12)
)
def test_every_good_line_kept_every_bad_line_reported(tmp_path, lines):
    path = tmp_path / "x.jsonl"
    raw = [_encode(v) if kind == "good" else v for kind, v in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    got = list(read_jsonl(path))
    assert [e.line for e in got if e.ok] == [n for n, (kind, _) in enumerate(lines, 1) if kind == "good"]
    assert [e.value for e in got if e.ok] == [v for kind, v in lines if kind == "good"]
    assert [e.line for e in got if not e.ok] == [n for n, (kind, _) in enumerate(lines, 1) if kind == "bad"]
    assert all(e.error and e.value is None for e in got if not e.ok)


@SETTINGS
@given(st.lists(json_values, max_size=10))
def test_values_that_are_not_objects_are_reported(tmp_path, values):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"".join(_encode(v) + b"\n" for v in values))
    got = list(read_jsonl(path))
    assert len(got) == len(values)
    for entry, value in zip(got, values):
        assert entry.ok == isinstance(value, dict)
        if not entry.ok:
            assert entry.error.startswith("expected a JSON object")


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(tmp_path, data):
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    for entry in read_jsonl(path):
        assert entry.line >= 1 and (entry.ok or entry.error)
    result = load_manifest(path)
    assert all(e.line >= 1 for e in result.errors)


manifest_lines = st.fixed_dictionaries(
    {
        "audio": st.text(min_size=1, max_size=10).filter(str.strip),
        "prompt": st.text(min_size=1).filter(str.strip),
        "answer": st.text(min_size=1).filter(str.strip),
    },
    optional={
        "start": st.floats(0, 100),
        "skill": st.sampled_from(["counting", "temporal_reasoning"]),
        "note": json_values,
    },
)
manifest_bad = st.one_of(
    bad_lines,
    json_values.filter(lambda v: not isinstance(v, dict)).map(_encode),
    st.dictionaries(
        st.sampled_from(["audio", "prompt", "answer", "start", "end", "skill", "choices", "id"]),
        json_values,
        max_size=6,
    )
    .filter(lambda d: not all(isinstance(d.get(k), str) and d[k].strip() for k in ("audio", "prompt", "answer")))
    .map(_encode),
)


@SETTINGS
@given(
    st.lists(st.one_of(manifest_lines.map(lambda v: ("good", v)), manifest_bad.map(lambda b: ("bad", b))), max_size=10)
)
def test_manifest_keeps_good_lines_and_reports_bad_ones(tmp_path, lines):
    path = tmp_path / "m.jsonl"
    raw = [_encode({**v, "id": f"s{n}"}) if kind == "good" else v for n, (kind, v) in enumerate(lines, 1)]
    path.write_bytes(b"\n".join(raw) + b"\n")
    result = load_manifest(path)
    assert [s.line for s in result.samples] == [n for n, (kind, _) in enumerate(lines, 1) if kind == "good"]
    assert [e.line for e in result.errors] == [n for n, (kind, _) in enumerate(lines, 1) if kind == "bad"]


def test_line_numbers_and_reasons(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\xff\n\n{bad\n[1]\n' + b"7" * 5000 + b'\n"\\ud83d"\n{"b": 2}\r\n')
    got = {e.line: e.error or e.value for e in read_jsonl(path)}
    assert got[1] == {"a": 1} and got[8] == {"b": 2} and 3 not in got
    assert "not valid UTF-8" in got[2] and "invalid JSON" in got[4]
    assert "expected a JSON object, got list" in got[5]
    assert "invalid JSON" in got[6] and "surrogate" in got[7]


@pytest.mark.parametrize("make", ["missing", "directory", "unreadable"])
def test_missing_or_unreadable_file_is_an_input_error(tmp_path, make):
    path = tmp_path / "in.jsonl"
    if make == "directory":
        path.mkdir()
    elif make == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads every file")
        path.write_text("{}\n")
        path.chmod(0)
    with pytest.raises(InputError, match=str(path)):
        list(read_jsonl(path))
    with pytest.raises(InputError, match=str(path)):
        load_manifest(path)


def test_cut_torn_tail_and_good_objects(tmp_path, caplog):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n\xff\n{"id": "b"}\n{"id": "c", "pre')
    cut_torn_tail(path)
    assert path.read_bytes().endswith(b'{"id": "b"}\n')
    assert good_objects(path) == [{"id": "a"}, {"id": "b"}] and ":2: not valid UTF-8" in caplog.text
    assert good_objects(tmp_path / "absent.jsonl") == []


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"id": st.sampled_from("abcdef"), "prediction": st.text()}).map(
                lambda v: ("good", v)
            ),
            bad_lines.map(lambda b: ("bad", b)),
        ),
        max_size=12,
    )
)
def test_job_and_prediction_readers_keep_good_lines_and_report_bad_ones(tmp_path, lines):
    from af2.eval.inputs import load_predictions
    from af2.llm.jobs import read_records

    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(_encode(v) if kind == "good" else v for kind, v in lines) + b"\n")
    first = {}
    for n, (kind, v) in enumerate(lines, 1):
        if kind == "good":
            first.setdefault(v["id"], (n, v))
    records, bad = read_records(path)
    assert [(r.line, r.data) for r in records] == sorted(first.values(), key=lambda x: x[0])
    assert sorted(b["input_line"] for b in bad) == sorted(
        set(range(1, len(lines) + 1)) - {n for n, _ in first.values()}
    )
    predictions = load_predictions(path)
    assert predictions.by_id == {k: v["prediction"] for k, (_, v) in first.items()}
    assert len(predictions.problems) == len(bad)

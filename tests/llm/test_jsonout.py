"""JSON extraction, local repair and schema validation of replies (af2.llm.jsonout)."""

import pytest

from af2.llm.jsonout import JSONProblem, parse_json, parse_structured, validate

SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"type": "string", "minLength": 1}}},
}


@pytest.mark.parametrize(
    "text, value, repairs",
    [
        ('{"items": ["a"]}', {"items": ["a"]}, []),
        ('```json\n{"items": ["a"]}\n```', {"items": ["a"]}, ["code_fence"]),
        ('Here you go: {"items": ["a"]} Enjoy!', {"items": ["a"]}, ["leading_text", "trailing_text"]),
        ('{"items": ["a", "b",],}', {"items": ["a", "b"]}, ["trailing_comma"]),
        ('{"items": ["a, b",]}', {"items": ["a, b"]}, ["trailing_comma"]),
        ('{"items": ["a", "b", "c', {"items": ["a", "b"]}, ["truncated"]),  # the cut item is dropped
        ('```json\n{"items": ["a", "b"', {"items": ["a", "b"]}, ["code_fence", "truncated"]),
        ("[1, 2]", [1, 2], []),
    ],
)
def test_parse_json_repairs(text, value, repairs):
    assert parse_json(text) == (value, repairs)


@pytest.mark.parametrize("text", ["", "no json here", '{"a": 1 "b": 2}', '{"a": [1, 2}', "{'a': 1}"])
def test_parse_json_rejects_what_it_cannot_repair(text):
    with pytest.raises(JSONProblem):
        parse_json(text)


def test_trailing_comma_inside_a_string_is_kept():
    assert parse_json('{"t": "x,]", "u": [1,],}')[0] == {"t": "x,]", "u": [1]}


def test_validate_lists_every_violation_with_its_path():
    errors = validate({"items": ["", 3]}, SCHEMA)
    assert errors == ["$.items[0]: '' should be non-empty", "$.items[1]: 3 is not of type 'string'"]
    assert validate({"items": ["x"]}, SCHEMA) == []


def test_parse_structured_reports_parse_and_schema_errors():
    assert parse_structured('{"items": ["x"]}', SCHEMA).ok
    missing = parse_structured('{"other": 1}', SCHEMA)
    assert not missing.ok and missing.errors == ["$: 'items' is a required property"]
    broken = parse_structured("not json", SCHEMA)
    assert not broken.ok and broken.value is None and "no JSON" in broken.errors[0]

"""Structured output: find the JSON in a reply, repair what is cheap to repair, check a schema.

``parse_json`` accepts a bare JSON value, one wrapped in a Markdown code fence or in prose,
with trailing commas, or cut off (a reply that hit ``max_tokens``: the incomplete tail is
dropped, never guessed, by jiter's partial mode). ``validate`` checks a JSON Schema (Draft
2020-12) and returns readable error lines. ``parse_structured`` does both; what it cannot
repair it reports, and the client then asks the model to fix it or rejects the reply.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import jiter
import jsonschema

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)


class JSONProblem(ValueError):
    """The reply holds no JSON value that can be recovered."""


@dataclass
class Parsed:
    value: Any = None
    errors: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _strip_trailing_commas(text: str) -> str:
    out, in_string, escaped = [], False, False
    for i, ch in enumerate(text):
        if in_string:
            escaped = ch == "\\" and not escaped
            in_string = not (ch == '"' and not escaped)
        elif ch == '"':
            in_string = True
        elif ch == "," and text[i + 1 :].lstrip()[:1] in ("}", "]"):
            continue
        out.append(ch)
    return "".join(out)


def parse_json(text: str) -> tuple[Any, list[str]]:
    """The JSON value in ``text`` and the list of repairs it took; raises ``JSONProblem``."""
    repairs: list[str] = []
    body = text.strip()
    fence = _FENCE.search(body)
    if fence and not body.startswith(("{", "[")):
        body, _ = fence.group(1).strip(), repairs.append("code_fence")
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        raise JSONProblem("the reply holds no JSON object or array")
    if min(starts) > 0:
        body, _ = body[min(starts) :], repairs.append("leading_text")
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(body)
        if body[end:].strip():
            repairs.append("trailing_text")
        return value, repairs
    except json.JSONDecodeError as err:
        first_error = err
    uncomma = _strip_trailing_commas(body)
    if uncomma != body:
        repairs.append("trailing_comma")
        try:
            value, end = decoder.raw_decode(uncomma)
            return value, repairs
        except json.JSONDecodeError:
            pass
    try:  # a reply cut off mid-way is a prefix of valid JSON: the strict parser hits EOF
        jiter.from_json(uncomma.encode())
    except ValueError as err:
        if "EOF while parsing" not in str(err):
            raise JSONProblem(f"invalid JSON: {first_error}") from None
    return jiter.from_json(uncomma.encode(), partial_mode="on"), repairs + ["truncated"]


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_json)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(value: Any, schema: dict) -> list[str]:
    """Schema violations of ``value`` as lines like ``$.items[2]: 'x' is too short``."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]


def parse_structured(text: str, schema: dict | None = None) -> Parsed:
    try:
        value, repairs = parse_json(text)
    except JSONProblem as err:
        return Parsed(errors=[str(err)])
    errors = validate(value, schema) if schema is not None else []
    return Parsed(value=value, errors=errors, repairs=repairs)

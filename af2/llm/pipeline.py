"""What every batch job over JSONL records shares: records, outcomes, provenance, the pipeline base.

A pipeline turns one input record (a JSONL line) into an ``Outcome``: the output lines for it,
or a rejection with reasons. The job runner (``af2.llm.jobs``) does the rest: ids, resume,
writing, the report. The data generators (``af2.data.llm``) and the LLM judge
(``af2.eval.judge``) are pipelines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from af2.llm.client import LLMClient, StructuredResult
from af2.llm.templates import PromptTemplate, load_template


class RecordError(ValueError):
    """The input record lacks what the pipeline needs (it is rejected, not retried)."""


@dataclass(frozen=True)
class Record:
    source_id: str
    data: dict
    line: int


@dataclass
class Outcome:
    lines: list[dict] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why it was rejected (when no lines)
    raw: str | None = None  # the last reply, kept with a rejection


def record_id(data: dict) -> str:
    """The record's ``id``, or a hash of its content when it has none."""
    if data.get("id") not in (None, ""):
        return str(data["id"])
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return "sha1-" + hashlib.sha1(blob.encode()).hexdigest()[:16]


def seeded_rng(*parts: Any) -> random.Random:
    """A random generator that depends only on ``parts`` (reruns shuffle the same way)."""
    return random.Random(int(hashlib.sha256(repr(parts).encode()).hexdigest()[:16], 16))


def require_text(data: dict, *keys: str) -> tuple[str, str]:
    """The first of ``keys`` that holds a non-empty string, and its value."""
    for key in keys:
        if isinstance(data.get(key), str) and data[key].strip():
            return key, data[key].strip()
    raise RecordError(f"the record has no {' / '.join(keys)} text")


class Pipeline:
    """Base of a pipeline: a versioned template (``name`` in the package ``template_package``),
    a JSON schema and ``process``."""

    name = ""
    help = ""
    template_package = ""  # the package whose templates/ folder holds ``name``.vN.txt

    def __init__(self, args: argparse.Namespace, client: LLMClient):
        self.args, self.client = args, client
        self.template: PromptTemplate = load_template(self.template_package, self.name, args.template_version)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Pipeline-specific flags."""

    def process(self, record: Record) -> Outcome:
        raise NotImplementedError

    def ask(self, check, schema: dict, **inputs) -> StructuredResult:
        """Render the template with ``input=inputs`` and get a checked JSON reply."""
        return self.client.complete_json(
            self.template.render(input=inputs), schema=schema, check=check, template=self.template
        )

    def provenance(self, record: Record, result: StructuredResult, **extra) -> dict:
        """Where a line came from; an input's own provenance (a chained job) is kept as ``previous``."""
        when = datetime.fromtimestamp(result.generated_at, timezone.utc)
        previous = record.data.get("provenance")
        return {
            "pipeline": self.name,
            "source_id": record.source_id,
            "model": self.client.config.model,
            "template": self.template.name,
            "template_version": self.template.version_tag,
            "template_sha256": self.template.sha256,
            "generated_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "llm_calls": len(result.completions),
            **extra,
            **({"previous": previous} if isinstance(previous, dict) else {}),
        }

    @staticmethod
    def rejected(result: StructuredResult, reasons: list[str] | None = None) -> Outcome:
        raw = result.completions[-1].text if result.completions else None
        return Outcome(reasons=reasons or result.problems, raw=raw)


def keep_valid(items: list, issues_of, label: str, need: int | None = None) -> tuple[list, list[str]]:
    """Split ``items`` into the accepted ones and problems, for a ``complete_json`` check.

    ``issues_of(item, accepted)`` lists what is wrong with one item. With ``need``, the check
    passes once ``need`` items are accepted (extras dropped); without, every item must pass.
    """
    accepted, problems = [], []
    for i, item in enumerate(items, 1):
        issues = issues_of(item, accepted)
        if issues:
            problems.append(f"{label} {i} ({json.dumps(item, ensure_ascii=False)}): {'; '.join(issues)}")
        else:
            accepted.append(item)
    if need is None:
        return accepted, problems
    if len(accepted) >= need:
        return accepted[:need], []
    return accepted, problems + [f"{need} usable {label}s are needed, {len(accepted)} are usable"]

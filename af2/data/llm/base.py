"""What the four generators share: their template package and the caption-record helpers.

A generator is an ``af2.llm.pipeline.Pipeline`` whose versioned prompt lives in this package's
``templates/``; the job runner ``af2.llm.jobs`` runs it over a JSONL file.
"""

from __future__ import annotations

import argparse

from af2.llm.pipeline import Pipeline, Record, require_text


class Generator(Pipeline):
    """A data-generation pipeline: its template is ``af2/data/llm/templates/<name>.vN.txt``."""

    template_package = "af2.data.llm"


#: The prompt of a caption line's manifest form (an audio + caption record has no question).
CAPTION_PROMPT = "Describe the audio in detail."


def add_field_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--field", default=None, help="key of the caption in each record (default: caption, else answer, else text)"
    )
    parser.add_argument(
        "--caption-prompt",
        default=CAPTION_PROMPT,
        help=f"prompt written on output lines of records with audio and no prompt (default {CAPTION_PROMPT!r})",
    )


def manifest_fields(args: argparse.Namespace, record: Record, caption: str) -> dict:
    """What an audio + caption record lacks to be a manifest line (``af2.data.manifest``):
    ``prompt`` (``--caption-prompt``), ``answer`` (the caption) and ``id`` (the source id).
    Nothing for records without ``audio``; a record's own keys are never replaced."""
    data = record.data
    if not isinstance(data.get("audio"), str) or not data["audio"].strip():
        return {}
    fields = {}
    if not (isinstance(data.get("prompt"), str) and data["prompt"].strip()):
        fields["prompt"] = getattr(args, "caption_prompt", None) or CAPTION_PROMPT
    if not (isinstance(data.get("answer"), str) and data["answer"].strip()):
        fields["answer"] = caption
    if data.get("id") in (None, ""):
        fields["id"] = record.source_id
    return fields


def caption_of(args: argparse.Namespace, data: dict) -> tuple[str, str]:
    return require_text(data, *([args.field] if args.field else ["caption", "answer", "text"]))

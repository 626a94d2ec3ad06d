"""``qa``: AudioSkills-style questions from a clip's metadata, one of the 7 skills each.

Input records are manifest-like: ``audio`` (and optional ``id``, ``start``, ``end``,
``duration``) plus any metadata: ``caption``/``captions``, ``tags``, time-stamped ``events``,
``transcript``. The metadata (all keys but ``audio``, ``id`` and ``provenance``) goes to the
LLM. Skills rotate over ``--skills`` from a per-record offset, so a data set covers them
evenly; speech reasoning is asked only of records with a ``transcript``.
"""

from __future__ import annotations

from af2.data.llm.questions import QuestionPipeline
from af2.data.skills import CONTEXTUAL_SPEECH_EVENT_REASONING, SKILLS
from af2.llm.pipeline import Outcome, Record

HIDDEN_KEYS = ("audio", "id", "provenance")


class QA(QuestionPipeline):
    name = "qa"
    help = "AudioSkills QA from metadata (captions, tags, time stamps, transcripts)"

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--skills", default=",".join(SKILLS), help="comma-separated skills to rotate through (default: all 7)"
        )

    def __init__(self, args, client):
        super().__init__(args, client)
        self.skills = [s.strip() for s in args.skills.split(",") if s.strip()]
        if not self.skills or set(self.skills) - set(SKILLS):
            raise SystemExit(f"--skills: choose from {', '.join(SKILLS)}")

    def process(self, record: Record) -> Outcome:
        data = record.data
        skills = [
            s for s in self.skills if s != CONTEXTUAL_SPEECH_EVENT_REASONING or data.get("transcript")
        ] or self.skills
        metadata = {k: v for k, v in data.items() if k not in HIDDEN_KEYS}
        return self.ask_questions(
            record, self.plan(record, skills), lambda item: [], self.duration(data), {"metadata": metadata}
        )

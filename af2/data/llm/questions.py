"""What ``qa`` and ``longqa`` share: question plans, the reply schema, manifest lines.

A plan lists, for one input record, the questions to ask: each with a format (multiple
choice with ``--choices`` options, or open) and, for ``qa``, a skill. Every accepted question
becomes one manifest line (``af2.data.manifest``): ``id`` ``<source id>/q<k>``, ``audio``,
``start``/``end`` when the record has them, ``prompt`` (the question), ``answer``, ``skill``,
and for multiple choice ``choices`` (shuffled, reproducibly) and ``answer_index``.
"""

from __future__ import annotations

from af2.data.llm import checks, textcheck
from af2.data.llm.base import Generator
from af2.data.skills import SKILLS
from af2.llm.pipeline import Outcome, Record, RecordError, keep_valid, seeded_rng

ITEM = {
    "type": "object",
    "required": ["skill", "format", "question", "answer"],
    "properties": {
        "skill": {"type": "string"},
        "format": {"enum": list(checks.FORMATS)},
        "question": {"type": "string"},
        "answer": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
        "needed_segments": {"type": "array", "items": {"type": "integer"}},
    },
}
SCHEMA = {"type": "object", "required": ["questions"], "properties": {"questions": {"type": "array", "items": ITEM}}}


class QuestionPipeline(Generator):
    count_flag = "--per-record"

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument(
            cls.count_flag, dest="count", type=int, default=3, help="questions per input record (default 3)"
        )
        parser.add_argument(
            "--format",
            default="mixed",
            choices=("mixed",) + checks.FORMATS,
            help="multiple_choice, open, or mixed: alternating (default)",
        )
        parser.add_argument("--choices", type=int, default=4, help="options of a multiple-choice question")

    def plan(self, record: Record, skills: list[str] | None) -> list[dict]:
        """The questions to ask: format, number of choices and (with ``skills``) the skill."""
        rng = seeded_rng(self.name, record.source_id)
        first_skill, first_format = rng.randrange(len(skills or [1])), rng.randrange(2)
        plan = []
        for k in range(self.args.count):
            fmt = self.args.format if self.args.format != "mixed" else checks.FORMATS[(first_format + k) % 2]
            entry = {"format": fmt, **({"choices": self.args.choices} if fmt == "multiple_choice" else {})}
            if skills:
                entry = {"skill": skills[(first_skill + k) % len(skills)], **entry}
            plan.append(entry)
        return plan

    def ask_questions(
        self, record: Record, plan: list[dict], extra_issues, duration: float | None, inputs: dict
    ) -> Outcome:
        """Ask for the planned questions; every valid one becomes a manifest line."""
        if not isinstance(record.data.get("audio"), str):
            raise RecordError("the record has no 'audio' path")

        def issues(pair, kept):
            k, item = pair
            want = plan[k]
            return checks.question_problems(
                item,
                skill=want.get("skill"),
                fmt=want["format"],
                n_choices=self.args.choices,
                duration=duration,
                skills=SKILLS,
            ) or extra_issues(item)

        def check(value):
            items = value["questions"][: len(plan)]
            kept, problems = keep_valid(list(enumerate(items)), issues, "question")
            if len(items) < len(plan):
                problems.append(f"{len(plan)} questions were asked for, {len(items)} came")
            return kept, problems

        result = self.ask(check, SCHEMA, **inputs, questions=plan)
        if not result.value:
            return self.rejected(result)
        provenance = self.provenance(record, result, llm_problems=result.problems)
        return Outcome([self.line(record, k, item, provenance) for k, item in result.value])

    @staticmethod
    def duration(data: dict) -> float | None:
        if isinstance(data.get("duration"), (int, float)):
            return float(data["duration"])
        if isinstance(data.get("start"), (int, float)) and isinstance(data.get("end"), (int, float)):
            return float(data["end"] - data["start"])
        return None

    def line(self, record: Record, k: int, item: dict, provenance: dict) -> dict:
        data = record.data
        line = {
            "id": f"{record.source_id}/q{k}",
            "audio": data["audio"],
            **{key: data[key] for key in ("start", "end") if isinstance(data.get(key), (int, float))},
            "prompt": item["question"].strip(),
            "answer": item["answer"].strip(),
            "skill": item["skill"],
        }
        if item["format"] == "multiple_choice":
            choices = [c.strip() for c in item["choices"]]
            seeded_rng(self.name, record.source_id, k).shuffle(choices)
            index = [textcheck.normalize(c) for c in choices].index(textcheck.normalize(line["answer"]))
            line.update(answer=choices[index], choices=choices, answer_index=index)
        return {**line, **self.line_extra(record, item), "provenance": provenance}

    def line_extra(self, record: Record, item: dict) -> dict:
        return {}

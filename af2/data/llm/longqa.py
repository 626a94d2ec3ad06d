"""``longqa``: reasoning questions over a long recording that need several distant segments.

Input records: ``audio`` (optional ``id``, ``start``, ``end``, ``duration``) and ``segments``,
a list of ``{"start", "end", "caption"}`` in seconds. Each question must need at least
``--min-segments`` segments whose first and last lie ``--min-gap`` seconds apart, and must
refer to each (a content word of its caption); the manifest line records them in
``needed_segments`` as ``{"index", "start", "end"}``.
"""

from __future__ import annotations

from af2.data.llm import checks
from af2.data.llm.questions import QuestionPipeline
from af2.data.skills import SKILLS
from af2.llm.pipeline import Outcome, Record, RecordError


def segments_of(data: dict) -> list[dict]:
    segs = data.get("segments")
    if not isinstance(segs, list) or not segs:
        raise RecordError("the record has no 'segments' list")
    out = []
    for seg in segs:
        ok = (
            isinstance(seg, dict)
            and isinstance(seg.get("caption"), str)
            and all(isinstance(seg.get(k), (int, float)) for k in ("start", "end"))
        )
        if not ok or seg["end"] <= seg["start"]:
            raise RecordError(f"bad segment {seg!r}: needs start < end (seconds) and a caption")
        out.append({"start": float(seg["start"]), "end": float(seg["end"]), "caption": seg["caption"]})
    return sorted(out, key=lambda s: s["start"])


class LongQA(QuestionPipeline):
    name = "longqa"
    help = "questions over a long recording that need several distant segments"
    count_flag = "--per-recording"

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--min-segments", type=int, default=2, help="segments a question needs (default 2)")
        parser.add_argument(
            "--min-gap", type=float, default=30.0, help="seconds between the first and last needed segment (default 30)"
        )

    def process(self, record: Record) -> Outcome:
        segments = segments_of(record.data)
        if len(segments) < self.args.min_segments:
            raise RecordError(f"{len(segments)} segments, fewer than --min-segments {self.args.min_segments}")
        duration = self.duration(record.data) or segments[-1]["end"]
        args = self.args
        listed = [{"index": i, **seg} for i, seg in enumerate(segments)]
        return self.ask_questions(
            record,
            self.plan(record, None),
            lambda item: checks.segment_problems(item, segments, min_segments=args.min_segments, min_gap=args.min_gap),
            duration,
            {
                "duration": duration,
                "segments": listed,
                "min_segments": args.min_segments,
                "min_gap_s": args.min_gap,
                "skills": list(SKILLS),
            },
        )

    def line_extra(self, record: Record, item: dict) -> dict:
        segments = segments_of(record.data)
        return {
            "needed_segments": [
                {"index": i, "start": segments[i]["start"], "end": segments[i]["end"]}
                for i in sorted(set(item["needed_segments"]))
            ]
        }

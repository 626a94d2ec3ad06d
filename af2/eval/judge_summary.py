"""A judge run read back from its files: how many scored, rejected, pending; mean per skill.

Computed from the output and rejects files of the run (not from one process's counters), so
the summary after a resume covers the whole run. Each reference sample is, in this order:
``scored`` (a line in the output), ``rejected`` (a line in the rejects file), ``pending``
(it has a prediction but no result yet: rerun to resume) or ``unpredicted`` (no prediction
line). The mean score is over scored samples only; rejected and missing ones are counted,
never scored. ``duplicates`` counts ids with more than one output line (the job machinery
writes none; it is reported so that an edited file cannot go unnoticed), ``stray_rejects``
rejected lines that match no reference (broken lines, unknown ids).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from af2.data.manifest import Sample
from af2.eval.skills import skill_of, skill_order
from af2.jsonl import good_objects


@dataclass
class JudgeTally:
    n: int = 0
    scored: int = 0
    rejected: int = 0
    pending: int = 0
    unpredicted: int = 0
    fallback: int = 0  # scored by the fallback parser
    score_sum: int = 0

    @property
    def mean(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_score": self.mean}


@dataclass
class JudgeSummary:
    overall: JudgeTally
    by_skill: dict[str, JudgeTally]
    duplicates: int = 0
    stray_rejects: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "overall": self.overall.to_dict(),
            "by_skill": {k: t.to_dict() for k, t in self.by_skill.items()},
            "duplicates": self.duplicates,
            "stray_rejects": self.stray_rejects,
        }


def read_jsonl(path: Path) -> list[dict]:
    """The usable lines of a judged or rejects file (``af2.jsonl.good_objects``)."""
    return good_objects(path)


def summarize(
    references: Mapping[str, Sample], predicted: set[str], judged: list[dict], rejects: list[dict]
) -> JudgeSummary:
    judged = [j for j in judged if isinstance(j.get("id"), str) and type(j.get("score")) is int]
    rejects = [r for r in rejects if isinstance(r.get("source_id"), str)]
    counts = Counter(line["id"] for line in judged)
    scored = {}
    for line in judged:
        scored.setdefault(line["id"], line)
    rejected = {r["source_id"] for r in rejects}
    overall, by_skill = JudgeTally(), {}
    for sid, sample in references.items():
        tally = by_skill.setdefault(skill_of(sample), JudgeTally())
        for t in (overall, tally):
            t.n += 1
            if sid in scored:
                t.scored += 1
                t.score_sum += scored[sid]["score"]
                t.fallback += scored[sid].get("parsed_by") == "fallback"
            elif sid in rejected:
                t.rejected += 1
            elif sid in predicted:
                t.pending += 1
            else:
                t.unpredicted += 1
    return JudgeSummary(
        overall,
        {k: by_skill[k] for k in skill_order(by_skill)},
        sum(c - 1 for c in counts.values()),
        sorted(rejected - set(references)),
    )

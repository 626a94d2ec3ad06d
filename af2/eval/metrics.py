"""Metrics of predictions against references: choice accuracy, exact and normalised match.

Every reference sample counts, predicted or not: a sample without a prediction is wrong on
every metric and counted as ``missing``. A sample with ``choices`` is multiple choice: it is
right when ``parse_choice`` picks the answer's option; a prediction that picks no option is
wrong and counted as ``unparsed``. Every sample also gets exact match (``exact``) and
normalised match (``normalized``) against its answer. ``correct``, the headline accuracy, is
choice accuracy for multiple choice and normalised match for open answers. Tallies are kept
per skill (the seven AudioSkills, then ``untagged``) and over all samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

from af2.data.manifest import Sample
from af2.eval.normalize import exact_match, normalized_match
from af2.eval.parsing import parse_choice
from af2.eval.skills import skill_of, skill_order


@dataclass(frozen=True)
class SampleScore:
    id: str
    skill: str
    multiple_choice: bool
    predicted: bool
    correct: bool
    exact: bool
    normalized: bool
    picked: int | None = None  # the option the prediction picked (multiple choice)
    parsed: str | None = None  # how it was picked, or why not (``parsing.Choice.how``)


def score_sample(sample: Sample, prediction: str | None) -> SampleScore:
    multiple_choice = bool(sample.choices)
    if prediction is None:
        return SampleScore(sample.id, skill_of(sample), multiple_choice, False, False, False, False)
    exact, normalized = exact_match(prediction, sample.answer), normalized_match(prediction, sample.answer)
    if not multiple_choice:
        return SampleScore(sample.id, skill_of(sample), False, True, normalized, exact, normalized)
    choice = parse_choice(prediction, sample.choices)
    correct = choice.index is not None and sample.choices[choice.index] == sample.answer
    return SampleScore(sample.id, skill_of(sample), True, True, correct, exact, normalized, choice.index, choice.how)


@dataclass
class Tally:
    n: int = 0
    missing: int = 0
    correct: int = 0
    exact: int = 0
    normalized: int = 0
    choice_n: int = 0
    choice_correct: int = 0
    unparsed: int = 0  # multiple-choice predictions that picked no option

    def add(self, s: SampleScore) -> None:
        self.n += 1
        self.missing += not s.predicted
        self.correct += s.correct
        self.exact += s.exact
        self.normalized += s.normalized
        self.choice_n += s.multiple_choice
        self.choice_correct += s.multiple_choice and s.correct
        self.unparsed += s.predicted and s.multiple_choice and s.picked is None

    def rates(self) -> dict[str, float | None]:
        def rate(k: int, n: int) -> float | None:
            return k / n if n else None

        return {
            "accuracy": rate(self.correct, self.n),
            "exact_match": rate(self.exact, self.n),
            "normalized_match": rate(self.normalized, self.n),
            "choice_accuracy": rate(self.choice_correct, self.choice_n),
        }

    def to_dict(self) -> dict:
        return {**asdict(self), **self.rates()}


@dataclass
class Scores:
    samples: list[SampleScore]
    overall: Tally
    by_skill: dict[str, Tally]
    unmatched: list[str] = field(default_factory=list)  # prediction ids with no reference

    def to_dict(self) -> dict:
        return {
            "overall": self.overall.to_dict(),
            "by_skill": {k: t.to_dict() for k, t in self.by_skill.items()},
            "unmatched_predictions": self.unmatched,
            "samples": [asdict(s) for s in self.samples],
        }


def score(references: Mapping[str, Sample], predictions: Mapping[str, str]) -> Scores:
    """Score every reference sample (in the manifest's order) against ``predictions`` by id."""
    samples = [score_sample(ref, predictions.get(sid)) for sid, ref in references.items()]
    overall, by_skill = Tally(), {}
    for s in samples:
        overall.add(s)
        by_skill.setdefault(s.skill, Tally()).add(s)
    return Scores(
        samples, overall, {k: by_skill[k] for k in skill_order(by_skill)}, sorted(set(predictions) - set(references))
    )

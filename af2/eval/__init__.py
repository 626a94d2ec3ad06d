"""Evaluation: metrics of predictions against a manifest, and the LLM judge (LongAudioBench).

Modules: ``normalize`` (text normalisation), ``parsing`` (which option a multiple-choice
prediction picks), ``inputs`` (prediction files and reference manifests), ``skills`` (groups
per skill), ``metrics`` (per-sample scores and per-skill tallies), ``fallback`` (scores from
judge replies that are not JSON), ``judge`` (the judge pipeline, run by the batch-job runner
``af2.llm.jobs``), ``judge_summary`` (a judge run read back and summarised) and
``report`` (the tables). Command line: ``python -m af2.eval score|judge --help``.
"""

from af2._deps import require

# scoring reads af2.data's manifests; the judge also needs af2[llm], inference af2[model]
require("af2.eval", "audio")

from af2.eval.metrics import Scores, Tally, score, score_sample  # noqa: E402
from af2.eval.normalize import normalize, normalized_match  # noqa: E402
from af2.eval.parsing import Choice, parse_choice  # noqa: E402

__all__ = ["Choice", "Scores", "Tally", "normalize", "normalized_match", "parse_choice", "score", "score_sample"]

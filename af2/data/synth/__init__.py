"""Synthetic AudioSkills data: procedural sound events, QA for the 7 skills, long scenes.

``python -m af2.data.synth --out DIR --n 2000 --seed 0`` or :func:`generate`. Modules:
:mod:`.events` (signal generators), :mod:`.catalog` (named events), :mod:`.scene`
(timelines and question records), one module per skill family (:mod:`.counting`,
:mod:`.temporal`, :mod:`.attributes`, :mod:`.context`, :mod:`.info`, :mod:`.general`),
:mod:`.long_scenes`, :mod:`.speech` (espeak-ng or formant fallback) and :mod:`.generate`.
"""

from af2.data.synth.generate import generate

__all__ = ["generate"]

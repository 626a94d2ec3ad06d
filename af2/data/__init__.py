"""af2.data: manifests, dynamic batching, collation, synthetic data.

Modules: :mod:`~af2.data.manifest` (JSONL manifests), :mod:`~af2.data.dataset` (samples read
and windowed with :mod:`af2.audio`),
:mod:`~af2.data.batching` (window-budget batches sharded over ranks),
:mod:`~af2.data.collator`, :mod:`~af2.data.loader` (all of it wired together),
:mod:`~af2.data.synth` (synthetic AudioSkills and long scenes),
:mod:`~af2.data.negatives` (rule-based hard-negative captions) and :mod:`~af2.data.lexicon`
(the sound-event and attribute words that the negatives and the checks of generated text share).
"""

from af2._deps import require

require("af2.data", "audio")

from af2.data.skills import SKILLS  # noqa: E402

__all__ = ["SKILLS"]

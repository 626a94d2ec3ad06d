"""Grouping by skill: a sample's group, and the order groups are shown in.

Groups are the seven AudioSkills (``af2.data.skills.SKILLS``) in their canonical order, then
``untagged`` for samples without a skill.
"""

from __future__ import annotations

from typing import Iterable

from af2.data.manifest import Sample
from af2.data.skills import SKILLS

UNTAGGED = "untagged"


def skill_of(sample: Sample) -> str:
    return sample.skill or UNTAGGED


def skill_order(groups: Iterable[str]) -> list[str]:
    present = set(groups)
    return [s for s in (*SKILLS, UNTAGGED) if s in present]

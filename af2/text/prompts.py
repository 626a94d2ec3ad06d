"""Prompt text shared by the synthetic generator, the training collator and evaluation.

A multiple-choice question lists its options after the question, one per line::

    Which sound comes right after the beep?
    Choose one:
    (A) the siren
    (B) the dog bark

:func:`with_choices` adds that block to a prompt unless the prompt already lists every
option as ``(X) option``; the answer stays the option's text.
"""

from __future__ import annotations

from typing import Sequence

CHOOSE = "Choose one:"


def label(k: int) -> str:
    """``(A)``, ``(B)``, ... for option ``k`` (0-based)."""
    return f"({chr(65 + k)})"


def choice_block(choices: Sequence[str]) -> str:
    """``Choose one:`` and the options, one ``(X) option`` per line."""
    return "\n".join([CHOOSE, *(f"{label(k)} {c}" for k, c in enumerate(choices))])


def lists_choices(prompt: str, choices: Sequence[str]) -> bool:
    """True when ``prompt`` already holds every option as ``(X) option`` (any layout)."""
    return all(f"{label(k)} {c}" in prompt for k, c in enumerate(choices))


def with_choices(prompt: str, choices: Sequence[str] | None) -> str:
    """``prompt`` with the :func:`choice_block` appended on a new line, unless there are no
    ``choices`` or the prompt already lists them."""
    if not choices or lists_choices(prompt, choices):
        return prompt
    return f"{prompt}\n{choice_block(choices)}"

"""Fixtures of the data tests: a tiny offline tokenizer with AF2's special tokens."""

from __future__ import annotations

import pytest

from af2.text.tokens import tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    """A byte-level BPE trained here on a few sentences (nothing is downloaded)."""
    return tiny_tokenizer()

"""The model's tokenizer: a local one (offline) with AF2's special tokens, or the tiny offline BPE.

AF2's public factory adds, to a Qwen2.5 tokenizer of 151,665 tokens, in this order:
additional special tokens ``<audio>`` (151665), ``<|endofchunk|>`` (151666), ``<|PAD_TOKEN|>``
(151667), then ``<SEP>`` as sep token (151668); the pad token stays Qwen's ``<|endoftext|>``
(a tokenizer without one gets ``<PAD>``). :func:`af2.text.tokens.add_special_tokens` repeats that
order exactly, so the embedding rows of a released AF2 checkpoint line up with the ids.
"""

from __future__ import annotations

from typing import Optional

from af2.text.tokens import add_special_tokens, tiny_tokenizer


def load_tokenizer(path: str):
    """A tokenizer from a local directory (never downloads), with AF2's tokens added."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    add_special_tokens(tok)
    return tok


def resolve_tokenizer(kind: Optional[str], path: Optional[str], llm_path: Optional[str]):
    """``path`` (or, failing it, ``llm_path``) -> :func:`load_tokenizer`; ``kind == "tiny"`` ->
    :func:`af2.text.tokens.tiny_tokenizer`; otherwise None (the model then runs on ids only)."""
    if path or (llm_path and kind != "tiny"):
        return load_tokenizer(path or llm_path)
    if kind == "tiny":
        return tiny_tokenizer()
    if kind is not None:
        raise ValueError(f"tokenizer must be 'tiny' or None (use tokenizer_path for a directory), got {kind!r}")
    return None

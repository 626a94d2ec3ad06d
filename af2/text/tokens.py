"""AF2's special tokens, the sample text format, and a tiny offline tokenizer for tests.

Sample format (AF2 public code): ``<audio>{prompt}<SEP>{answer}<|endofchunk|>{eos}``.
:func:`add_special_tokens` adds ``<audio>``, ``<|endofchunk|>``, ``<SEP>`` (as the
tokenizer's ``sep_token``) and a pad token (``<PAD>`` when the tokenizer has none), as the
public AF2 factory does, and returns how many were new (resize the LLM embeddings by it).
:func:`special_token_ids` reads their ids back (an error names the one that is missing).
"""

from __future__ import annotations

from typing import Iterable

AUDIO_TOKEN = "<audio>"
EOC_TOKEN = "<|endofchunk|>"
SEP_TOKEN = "<SEP>"
PAD_TOKEN = "<PAD>"


#: Added by the AF2 release right after <audio> and <|endofchunk|>, before <SEP>; keeping the
#: release's order keeps the new tokens' ids (151665-151668 on Qwen2.5) and so imported
#: embedding rows aligned.
OFFICIAL_EXTRA_TOKEN = "<|PAD_TOKEN|>"


def add_special_tokens(tokenizer) -> int:
    """Add AF2's special tokens to a transformers tokenizer in the AF2 release's order
    (<audio>, <|endofchunk|>, <|PAD_TOKEN|>, then a pad token if missing, then <SEP>);
    returns the number added."""
    added = tokenizer.add_special_tokens({"additional_special_tokens": [AUDIO_TOKEN, EOC_TOKEN, OFFICIAL_EXTRA_TOKEN]})
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if tokenizer.sep_token is None:
        added += tokenizer.add_special_tokens({"sep_token": SEP_TOKEN})
    return added


def token_id(tokenizer, token: str | None, what: str | None = None) -> int:
    """The id of ``token`` (``what`` names it in the error); a ``ValueError`` when the tokenizer
    lacks it (None, or the unknown token's id for a token that is not the unknown token)."""
    tid = None if token is None else tokenizer.convert_tokens_to_ids(token)
    if tid is None or (tid == tokenizer.unk_token_id and token != tokenizer.unk_token):
        name = f"{what} token" if what else "token"
        raise ValueError(f"tokenizer has no {name} {token!r}; add AF2's tokens with af2.text.tokens.add_special_tokens")
    return int(tid)


def special_token_ids(tokenizer) -> dict[str, int]:
    """ids of ``audio``, ``eoc``, ``sep``, ``pad``, ``eos``; raises if the tokenizer lacks one."""
    names = {
        "audio": AUDIO_TOKEN,
        "eoc": EOC_TOKEN,
        "sep": tokenizer.sep_token,
        "pad": tokenizer.pad_token,
        "eos": tokenizer.eos_token,
    }
    return {key: token_id(tokenizer, token, key) for key, token in names.items()}


def tiny_tokenizer(corpus: Iterable[str] | None = None, *, vocab_size: int = 400):
    """Train a small byte-level BPE tokenizer in memory (no download) with AF2's tokens.

    For tests and benchmarks only. Returns a ``PreTrainedTokenizerFast`` whose eos token
    is ``</s>``, with ``<audio>``, ``<|endofchunk|>``, ``<SEP>`` and ``<PAD>`` added.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = (
        list(corpus)
        if corpus is not None
        else [
            "How many beeps are there? 3. Which sound is louder, the first or the second?",
            "What happened right after the siren? The doorbell rang. The tempo is 120 BPM.",
            "Which instrument plays? piano flute violin clarinet organ. The note is A4.",
        ]
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["</s>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")
    add_special_tokens(wrapped)
    return wrapped

"""One sample in AF2's training format, as token ids and labels.

The text is ``<audio>{prompt}<SEP>{answer}<|endofchunk|>{eos}`` (AF2 public code), tokenised
piece by piece so the answer's span is exact. Labels are ``IGNORE_INDEX`` on ``<audio>``, the
prompt and ``<SEP>``, the token ids on the answer and, by default, on ``<|endofchunk|>`` and eos
(as the public AF2 code trains). The data collator (``af2.data.collator``), the processor
(``af2.model.processing_af2``) and choice scoring (``af2.eval.choice_scoring``) all encode here.
"""

from __future__ import annotations

from af2.text.tokens import special_token_ids

#: The label of a token that carries no loss (``torch.nn.functional.cross_entropy``'s default).
IGNORE_INDEX = -100


class SampleEncoder:
    """Token ids and labels of ``(prompt, answer)`` pairs for one tokenizer.

    ``audio_id``, ``eoc_id``, ``sep_id``, ``eos_id``, ``pad_id``: the special tokens' ids (a
    tokenizer without AF2's tokens is a ``ValueError``: add them with
    :func:`af2.text.tokens.add_special_tokens`). ``supervise_end_tokens=False`` puts
    ``IGNORE_INDEX`` on ``<|endofchunk|>`` and eos as well.
    """

    def __init__(self, tokenizer, *, supervise_end_tokens: bool = True):
        self.tokenizer = tokenizer
        self.supervise_end_tokens = supervise_end_tokens
        ids = special_token_ids(tokenizer)
        self.audio_id, self.eoc_id, self.sep_id = ids["audio"], ids["eoc"], ids["sep"]
        self.eos_id, self.pad_id = ids["eos"], ids["pad"]

    def text_ids(self, text: str) -> list[int]:
        """``text`` tokenised without the tokenizer's own special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, prompt: str, answer: str) -> tuple[list[int], list[int]]:
        """Token ids and labels of one sample (two lists of equal length)."""
        p, a = self.text_ids(prompt), self.text_ids(answer)
        ids = [self.audio_id, *p, self.sep_id, *a, self.eoc_id, self.eos_id]
        end = [self.eoc_id, self.eos_id] if self.supervise_end_tokens else [IGNORE_INDEX, IGNORE_INDEX]
        labels = [IGNORE_INDEX] * (len(p) + 2) + a + end
        return ids, labels

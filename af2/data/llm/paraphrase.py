"""``paraphrase``: M captions that say exactly what each input caption says (AF-CLAP positives).

Each paraphrase must keep every sound event and count of the caption (``textcheck``) and must
not be a near-copy of the caption or of another paraphrase (character-trigram Jaccard at or
above ``--dup-threshold``). A caption gets a line only with M usable paraphrases; otherwise it
is rejected. Output: the input record unchanged, plus ``paraphrases`` and ``provenance``; a record
with ``audio`` also gets what it lacks of ``prompt`` (``--caption-prompt``), ``answer`` (the
caption) and ``id``, so the output (and ``negatives``' output of it) loads as a manifest, which the
AF-CLAP stage (``training/clap.py``) reads its positives from.
"""

from __future__ import annotations

from af2.data.llm import checks
from af2.data.llm.base import Generator, add_field_argument, caption_of, manifest_fields
from af2.llm.pipeline import Outcome, Record, keep_valid

SCHEMA = {
    "type": "object",
    "required": ["paraphrases"],
    "properties": {"paraphrases": {"type": "array", "items": {"type": "string"}}},
}


class Paraphrase(Generator):
    name = "paraphrase"
    help = "M paraphrases of each caption (AF-CLAP positives)"

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--m", type=int, default=5, help="paraphrases per caption (default 5)")
        parser.add_argument(
            "--dup-threshold",
            type=float,
            default=0.8,
            help="trigram similarity at which a paraphrase counts as a copy (default 0.8)",
        )
        add_field_argument(parser)

    def process(self, record: Record) -> Outcome:
        key, caption = caption_of(self.args, record.data)
        m, threshold = self.args.m, self.args.dup_threshold

        def check(value):
            texts = [t.strip() for t in value["paraphrases"]]
            return keep_valid(
                texts, lambda t, kept: checks.paraphrase_problems(caption, t, kept, threshold), "paraphrase", need=m
            )

        result = self.ask(check, SCHEMA, caption=caption, count=m)
        if not result.ok:
            return self.rejected(result)
        return Outcome(
            [
                {
                    **record.data,
                    **manifest_fields(self.args, record, caption),
                    "paraphrases": result.value,
                    "provenance": self.provenance(record, result, field=key),
                }
            ]
        )

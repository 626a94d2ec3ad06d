"""``negatives``: composition-aware hard negative captions (AF-CLAP), from the LLM and the rules.

The LLM writes ``--n`` negatives, each labelled with its kind (swap_order, swap_attributes,
change_count, substitute_event) and checked against the caption for that kind (``checks``).
The rule-based generator of ``af2.data.negatives`` adds ``--rule-n`` more. The two are merged
without repeats; each negative records its ``kind`` and its ``source`` ("llm" or "rules").
A caption is rejected only when neither produced a negative. A record with ``audio`` also gets
what it lacks of ``prompt``, ``answer`` (the caption) and ``id``, as in ``paraphrase``: run on
``paraphrase``'s output, the lines load as a manifest with both ``paraphrases`` and ``negatives``,
which the AF-CLAP stage (``training/clap.py``) uses as its positives and hard negatives.
"""

from __future__ import annotations

from af2.data.llm import checks, textcheck
from af2.data.llm.base import Generator, add_field_argument, caption_of, manifest_fields
from af2.llm.pipeline import Outcome, Record, keep_valid, seeded_rng

SCHEMA = {
    "type": "object",
    "required": ["negatives"],
    "properties": {
        "negatives": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kind", "text"],
                "properties": {"kind": {"type": "string"}, "text": {"type": "string"}},
            },
        }
    },
}


def rule_generator():
    """``af2.data.negatives.make_negatives`` (the rule-based generator)."""
    try:
        from af2.data.negatives import make_negatives
    except ImportError as err:
        raise SystemExit(
            f"the rule-based generator af2.data.negatives is not available ({err}); "
            "pass --rule-n 0 to use the LLM alone"
        ) from None
    return make_negatives


class Negatives(Generator):
    name = "negatives"
    help = "hard negative captions, LLM-written and rule-based, labelled by kind"

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--n", type=int, default=4, help="LLM-written negatives per caption (default 4)")
        parser.add_argument(
            "--rule-n", type=int, default=4, help="rule-based negatives per caption, 0 for none (default 4)"
        )
        parser.add_argument(
            "--kinds", default=",".join(checks.NEGATIVE_KINDS), help="comma-separated kinds to make (default: all four)"
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of the rule-based generator")
        add_field_argument(parser)

    def __init__(self, args, client, make_negatives=None):
        super().__init__(args, client)
        self.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        unknown = set(self.kinds) - set(checks.NEGATIVE_KINDS)
        if unknown or not self.kinds:
            raise SystemExit(f"--kinds: unknown {sorted(unknown)}; choose from {checks.NEGATIVE_KINDS}")
        self.make_negatives = make_negatives or (rule_generator() if args.rule_n > 0 else None)

    def process(self, record: Record) -> Outcome:
        key, caption = caption_of(self.args, record.data)

        kinds = [k for k in self.kinds if checks.kind_applies(caption, k)]
        if not kinds:
            return Outcome(reasons=[f"none of the kinds {self.kinds} applies to this caption"])

        def issues(item, kept):
            text, kind = item["text"].strip(), item["kind"]
            if kind not in kinds:
                return [f"kind {kind!r} was not asked for"]
            if any(textcheck.normalize(text) == textcheck.normalize(k["text"]) for k in kept):
                return ["repeats another negative"]
            return checks.negative_problems(caption, text, kind)

        result = self.ask(
            lambda v: keep_valid(v["negatives"], issues, "negative", need=self.args.n),
            SCHEMA,
            caption=caption,
            count=self.args.n,
            kinds=kinds,
        )
        merged = [{"text": n["text"].strip(), "kind": n["kind"], "source": "llm"} for n in result.value or []]
        seen = {textcheck.normalize(t) for t in [caption] + [n["text"] for n in merged]}
        rule_reasons: list[str] = []
        if self.make_negatives is not None:
            seed = seeded_rng(self.args.seed, record.source_id).randrange(2**31)
            made = self.make_negatives(caption, self.args.rule_n, seed=seed, kinds=self.kinds)
            rule_reasons = list(made.reasons)
            for neg in made.negatives:
                if textcheck.normalize(neg.text) not in seen:
                    seen.add(textcheck.normalize(neg.text))
                    merged.append({"text": neg.text, "kind": neg.kind, "source": "rules"})
        if not merged:
            return self.rejected(result, result.problems + rule_reasons)
        extra = {"field": key, "llm_problems": result.problems, "rule_reasons": rule_reasons}
        return Outcome(
            [
                {
                    **record.data,
                    **manifest_fields(self.args, record, caption),
                    "negatives": merged,
                    "provenance": self.provenance(record, result, **extra),
                }
            ]
        )

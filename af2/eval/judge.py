"""``judge``: an LLM scores each prediction from 1 to 10 against its reference (LongAudioBench).

``Judge`` is a ``Pipeline`` of the batch-job machinery (``af2.llm.jobs.Job``), so a judge
run has that machinery's guarantees: one result per prediction id, written as soon as it is
known; resumable after a kill; replies cached (``af2.llm.ResponseCache``) before anything is
written, under a key made of the judge model, the template version and the rendered prompt
(question, reference and answer), so a rerun or a resume pays for nothing twice.

The input records are the prediction lines (``id``, ``prediction``); the reference is the
manifest sample with the same id. The prompt is the versioned file ``templates/judge.vN.txt``.
The reply must be JSON fitting ``SCHEMA``: ``score`` an integer from 1 to 10. A reply that is
not JSON or breaks the schema (a score of 0 or 11) gets repair requests from the client
(``LLMClient.complete_json``) and is then rejected; a judge that writes no JSON at all can
still be read by ``fallback.fallback_score``. A rejected judgement goes to the rejects file
with its reasons and is counted apart: it never enters the mean. A line of the output::

    {"id": ..., "skill": ..., "score": 7, "parsed_by": "json", "explanation": ...,
     "question": ..., "reference": ..., "prediction": ..., "provenance": {...}}
"""

from __future__ import annotations

from af2.data.manifest import Sample
from af2.eval.fallback import HIGH, LOW, fallback_score
from af2.llm.pipeline import Outcome, Pipeline, Record, RecordError

SCHEMA = {
    "type": "object",
    "required": ["score"],
    "properties": {"score": {"type": "integer", "minimum": LOW, "maximum": HIGH}, "explanation": {"type": "string"}},
}


class Judge(Pipeline):
    name = "judge"
    help = "score each prediction from 1 to 10 against its reference with an LLM judge"
    template_package = "af2.eval"

    def __init__(self, args, client, references: dict[str, Sample]):
        super().__init__(args, client)
        self.references = references

    def process(self, record: Record) -> Outcome:
        sample = self.references.get(record.source_id)
        if sample is None:
            raise RecordError(f"no reference with id {record.source_id!r}")
        prediction = record.data.get("prediction")
        if not isinstance(prediction, str):
            raise RecordError("the record has no 'prediction' string")
        inputs = {"question": sample.prompt, "reference": sample.answer, "answer": prediction}
        if sample.choices:
            inputs["choices"] = sample.choices
        result = self.ask(None, SCHEMA, **inputs)
        if result.ok:
            score, parsed_by, explanation = result.value["score"], "json", result.value.get("explanation", "")
        else:
            score, problems = fallback_score(c.text for c in result.completions)
            if score is None:
                return self.rejected(result, result.problems + problems)
            parsed_by, explanation = "fallback", result.completions[-1].text
            self.client.usage.count("events", "fallback_scores")
        line = {
            "id": record.source_id,
            "skill": sample.skill,
            "score": int(score),
            "parsed_by": parsed_by,
            "explanation": explanation,
            "question": sample.prompt,
            "reference": sample.answer,
            "prediction": prediction,
            "provenance": self.provenance(record, result),
        }
        return Outcome([line])

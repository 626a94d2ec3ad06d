"""LLM-assisted data generation: paraphrases, hard negatives, AudioSkills QA, long-audio QA.

Each generator is a subcommand of ``python -m af2.data.llm`` and a ``base.Generator`` class
(``paraphrase``, ``negatives``, ``qa``, ``longqa`` modules), an ``af2.llm.pipeline.Pipeline``
run by ``af2.llm.jobs.Job`` over a JSONL file through the client layer ``af2.llm``. Prompts are
versioned files in ``templates/``; ``checks`` and ``textcheck`` hold the validators.
"""

from af2._deps import require

require("af2.data.llm", "llm")

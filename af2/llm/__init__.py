"""OpenAI-compatible client layer shared by the data generators and the LLM judge.

    from af2.llm import LLMClient, LLMConfig, ResponseCache, load_template
    config = LLMConfig.from_env(model="gpt-4o")          # or LLMConfig.from_args(args)
    client = LLMClient(config, cache=ResponseCache("replies.sqlite"))
    template = load_template("af2.data.llm", "paraphrase")
    result = client.complete_json(template.render(input=...), schema=..., check=..., template=template)
    print(client.report().summary())

Modules: ``config`` (settings from flags and AF2_LLM_* variables), ``redact`` (the key never
shows), ``ratelimit`` (requests and tokens per minute), ``retry`` (what to retry, backoff,
Retry-After), ``cache`` (SQLite reply cache), ``jsonout`` (JSON extraction, repair, schema),
``templates`` (versioned prompt files), ``usage`` (tokens and cost), ``client`` (all together);
``pipeline`` (records, outcomes, the ``Pipeline`` base) and ``jobs`` (the resumable JSONL job
runner), which the data generators (``af2.data.llm``) and the judge (``af2.eval.judge``) run on.
"""

from af2._deps import require

require("af2.llm", "llm")

from af2.llm.cache import ResponseCache, cache_key  # noqa: E402
from af2.llm.client import Completion, LLMClient, StructuredResult  # noqa: E402
from af2.llm.config import LLMConfig  # noqa: E402
from af2.llm.jsonout import parse_json, parse_structured, validate  # noqa: E402
from af2.llm.redact import Secret  # noqa: E402
from af2.llm.retry import FatalError, LLMError, RequestRejected, RetriesExhausted, Unreachable  # noqa: E402
from af2.llm.templates import PromptTemplate, load_template  # noqa: E402
from af2.llm.usage import Usage  # noqa: E402

__all__ = [
    "Completion",
    "FatalError",
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "PromptTemplate",
    "RequestRejected",
    "ResponseCache",
    "RetriesExhausted",
    "Secret",
    "StructuredResult",
    "Unreachable",
    "Usage",
    "cache_key",
    "load_template",
    "parse_json",
    "parse_structured",
    "validate",
]

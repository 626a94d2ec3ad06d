"""Client settings: where the server is, which model, limits, retries, prices, cache.

Every setting is a field of ``LLMConfig`` and can come, in this order of precedence, from a
command-line flag (``add_arguments`` / ``from_args``), from the environment
(``AF2_LLM_<FIELD>``, plus ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` as fallbacks) or from
the default below. The key is held in a ``Secret`` so that a printed config never shows it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Mapping

from af2.llm.redact import Secret

ENV_PREFIX = "AF2_LLM_"


def _opt(default, help: str, fallback_env: str | None = None, flag: bool = True):
    return field(default=default, metadata={"help": help, "fallback_env": fallback_env, "flag": flag})


@dataclass
class LLMConfig:
    base_url: str | None = _opt(
        None, "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (default: OpenAI)", "OPENAI_BASE_URL"
    )
    model: str | None = _opt(None, "model name sent to the server (required)")
    api_key: Secret = _opt(
        Secret(None),
        "API key; prefer the environment variable, a flag is visible in the process list",
        "OPENAI_API_KEY",
    )
    timeout: float = _opt(120.0, "seconds before one request times out")
    max_retries: int = _opt(6, "retries of one request on timeouts, connection errors, 429 and 5xx")
    backoff_base: float = _opt(1.0, "first backoff delay in seconds; doubles on each retry")
    backoff_max: float = _opt(60.0, "largest backoff delay in seconds")
    max_retry_after: float = _opt(600.0, "largest server Retry-After honoured, in seconds")
    max_unreachable: int = _opt(
        3, "consecutive requests that cannot connect (refused, DNS, TLS) before the whole job stops (exit 2)"
    )
    concurrency: int = _opt(8, "requests in flight at once")
    rpm: float = _opt(0.0, "requests per minute (0: no limit)")
    tpm: float = _opt(0.0, "tokens per minute, prompt + completion (0: no limit)")
    temperature: float | None = _opt(None, "sampling temperature (default: the server's)")
    max_tokens: int = _opt(2048, "largest completion, in tokens")
    json_mode: bool = _opt(True, "ask for response_format=json_object (0 for servers without it)")
    max_repairs: int = _opt(2, "follow-up requests that ask the model to fix an invalid reply")
    price_in: float = _opt(0.0, "USD per million prompt tokens, for the cost report")
    price_out: float = _opt(0.0, "USD per million completion tokens, for the cost report")
    cache: str | None = _opt(None, "response cache file (SQLite); 'off' disables it")

    def __post_init__(self):
        if not isinstance(self.api_key, Secret):
            self.api_key = Secret(self.api_key)

    def replace(self, **changes) -> "LLMConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "LLMConfig":
        """Defaults, overridden by the environment, overridden by ``overrides`` (not None)."""
        env = os.environ if env is None else env
        values = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None and f.metadata.get("fallback_env"):
                raw = env.get(f.metadata["fallback_env"])
            if raw not in (None, ""):
                values[f.name] = _parse(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One ``--flag`` per field (``--base-url``, ``--max-retries``, ...), default None."""
        group = parser.add_argument_group("LLM client (flags override AF2_LLM_* variables)")
        for f in dataclasses.fields(cls):
            env = ENV_PREFIX + f.name.upper()
            group.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                default=None,
                type=lambda raw, f=f: _parse(f, raw),
                metavar=f.name.upper(),
                help=f"{f.metadata['help']} [{env}]",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> "LLMConfig":
        return cls.from_env(env, **{f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)})


def _parse(f: dataclasses.Field, raw: str):
    kind = str(f.type)
    if "Secret" in kind:
        return Secret(raw)
    if "bool" in kind:
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if raw.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{f.name}: expected a boolean, got {raw!r}")
    if "float" in kind:
        return float(raw)
    if "int" in kind:
        return int(raw)
    return raw

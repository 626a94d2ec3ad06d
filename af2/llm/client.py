"""The client: cached, rate-limited, retried chat completions, and JSON replies with repair.

``LLMClient.complete`` sends one chat-completions request (``openai`` package, its own retries
off): cache first, then the concurrency slot and the rate limiter, then retries with backoff
on the failures ``retry.classify`` calls transient. When ``max_unreachable`` consecutive
requests (of all threads) could not connect (refused, DNS, TLS), or one got a 404, every call
raises ``retry.Unreachable`` from then on: the server is not there, and retrying for minutes
per record would only hide it (a reply of any kind, even a 5xx, resets the count). Concurrent
calls with the same key wait for the first instead of paying twice. ``LLMClient.complete_json`` parses and validates the
reply (``jsonout``) and runs a caller's content check; a reply that fails either is sent back
with the list of problems for a fix, up to ``max_repairs`` times, and then rejected.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import openai

from af2.llm.cache import CachedReply, ResponseCache, cache_key
from af2.llm.config import LLMConfig
from af2.llm.jsonout import parse_structured
from af2.llm.ratelimit import RateLimiter
from af2.llm.redact import redact_url
from af2.llm.retry import (
    FATAL_STATUS,
    TRANSPORT_ERRORS,
    Backoff,
    BadResponse,
    FatalError,
    RequestRejected,
    RetriesExhausted,
    Unreachable,
    classify,
)
from af2.llm.templates import PromptTemplate, load_template
from af2.llm.usage import Usage

log = logging.getLogger("af2.llm")

Check = Callable[[Any], "tuple[Any, list[str]]"]


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    created: float  # when the model wrote it (kept in the cache, so a replay keeps the time)
    cached: bool
    key: str


@dataclass
class StructuredResult:
    value: Any
    problems: list[str]
    completions: list[Completion] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def generated_at(self) -> float:
        return max(c.created for c in self.completions)


def approx_tokens(text_or_messages) -> int:
    if isinstance(text_or_messages, str):
        return len(text_or_messages) // 4 + 1
    return sum(approx_tokens(m["content"]) + 4 for m in text_or_messages)


class LLMClient:
    def __init__(
        self,
        config: LLMConfig,
        *,
        cache: ResponseCache | None = None,
        usage: Usage | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
    ):
        if not config.model:
            raise ValueError("no model: pass --model or set AF2_LLM_MODEL")
        self.config, self.cache, self.sleep = config, cache, sleep
        self.usage = usage or Usage(price_in=config.price_in, price_out=config.price_out)
        self.limiter = RateLimiter(config.rpm, config.tpm, clock=clock, sleep=sleep)
        self.backoff = backoff or Backoff(config.backoff_base, config.backoff_max, config.max_retry_after)
        self.repair_template = load_template("af2.llm", "repair")
        self._slots = threading.BoundedSemaphore(max(1, config.concurrency))
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._unreachable_streak = 0  # consecutive requests that could not connect
        self._down: str | None = None  # set once the server is deemed absent: the message
        self._openai = openai.OpenAI(
            api_key=config.api_key.reveal() or "not-set",
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=0,
        )

    def report(self) -> Usage:
        """The usage so far, with the time spent waiting for the rate limiter."""
        self.usage.rate_limit_wait_s = self.limiter.waited
        return self.usage

    def params(self, **overrides) -> dict:
        """Generation parameters of a request: they are part of its cache key."""
        params = {"max_tokens": self.config.max_tokens}
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        params.update(overrides)
        return params

    def complete(
        self, messages: list[dict], *, template: PromptTemplate | None = None, sample: int = 0, **params
    ) -> Completion:
        """One reply to ``messages``; ``sample`` > 0 asks for another draw of the same prompt."""
        params = self.params(**params)
        key = cache_key(
            model=self.config.model,
            template=template.key if template else "",
            messages=messages,
            params=params,
            sample=sample,
        )
        while True:
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                self.usage.add(
                    cache_hits=1, saved_prompt_tokens=hit.prompt_tokens, saved_completion_tokens=hit.completion_tokens
                )
                return Completion(
                    hit.text, hit.finish_reason, hit.prompt_tokens, hit.completion_tokens, hit.created, True, key
                )
            with self._lock:
                waiter = self._inflight.get(key)
                if waiter is None:
                    self._inflight[key] = threading.Event()
            if waiter is None:
                break
            waiter.wait()  # the same request is in flight: take its reply from the cache
        try:
            reply = self._fetch(messages, params)
            if self.cache is not None:
                self.cache.put(key, reply, model=self.config.model, template=template.key if template else "")
        finally:
            with self._lock:
                self._inflight.pop(key).set()
        return Completion(
            reply.text, reply.finish_reason, reply.prompt_tokens, reply.completion_tokens, reply.created, False, key
        )

    def _fetch(self, messages: list[dict], params: dict) -> CachedReply:
        estimate = approx_tokens(messages) + params.get("max_tokens", 0)
        retries = self.config.max_retries
        for attempt in range(retries + 1):
            with self._slots:
                self._raise_if_down()
                self.limiter.acquire(estimate)
                self.usage.add(requests=1)
                try:
                    response = self._openai.chat.completions.create(
                        model=self.config.model, messages=messages, **params
                    )
                    reply = _unpack(response, messages)
                except TRANSPORT_ERRORS as exc:
                    failure, error_text = classify(exc), str(exc)
                else:
                    failure = None
                self._track_reachability(failure)
            if failure is None:
                self.limiter.settle(estimate, reply.prompt_tokens + reply.completion_tokens)
                self.usage.add(replies=1, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
                return reply
            if not failure.retry:
                self.usage.count("events", f"failed_{failure.reason}")
                if failure.unreachable:  # a 404: no such endpoint
                    with self._lock:
                        self._down = self._down or self._absent_message(failure.unreachable, 1)
                    raise Unreachable(self._down, failure.reason)
                error = FatalError if failure.status in FATAL_STATUS else RequestRejected
                raise error(f"the server refused the request: {error_text}", failure.reason)
            self._raise_if_down()
            if attempt == retries:
                self.usage.count("events", f"gave_up_{failure.reason}")
                raise RetriesExhausted(f"{failure.reason} after {retries + 1} attempts", failure.reason)
            delay = self.backoff.delay(attempt, failure)
            self.usage.count("retries", failure.reason)
            log.warning(
                "%s%s; retry %d/%d in %.2f s",
                failure.reason,
                f" ({failure.unreachable})" if failure.unreachable else "",
                attempt + 1,
                retries,
                delay,
            )
            self.sleep(delay)
        raise AssertionError("unreachable")

    def _track_reachability(self, failure) -> None:
        """Count consecutive requests that could not connect; any reply resets the count."""
        with self._lock:
            if failure is None or failure.unreachable is None or failure.status is not None:
                self._unreachable_streak = 0
                return
            self._unreachable_streak += 1
            limit = max(1, self.config.max_unreachable)
            if self._unreachable_streak >= limit and self._down is None:
                self._down = self._absent_message(failure.unreachable, limit)

    def _absent_message(self, why: str, requests: int) -> str:
        where = redact_url(str(self._openai.base_url).rstrip("/"))
        times = "" if requests == 1 else f" on {requests} consecutive requests"
        return (
            f"the LLM server at {where} is not there: {why}{times}; check --base-url / "
            f"AF2_LLM_BASE_URL (finished records are kept: rerun to resume)"
        )

    def _raise_if_down(self) -> None:
        if self._down is not None:
            self.usage.count("events", "server_unreachable")
            raise Unreachable(self._down, "unreachable")

    def complete_json(
        self,
        messages: list[dict],
        *,
        schema: dict | None = None,
        check: Check | None = None,
        template: PromptTemplate | None = None,
        max_repairs: int | None = None,
        sample: int = 0,
        **params,
    ) -> StructuredResult:
        """A JSON reply that parses, fits ``schema`` and passes ``check``, or the problems.

        ``check(value)`` returns ``(value, problems)``: the value to keep (it may filter it)
        and what is wrong with it (empty: accepted). On a rejection ``value`` is what the
        last ``check`` kept, or None when the last reply did not parse or fit the schema.
        """
        if self.config.json_mode:
            params.setdefault("response_format", {"type": "json_object"})
        max_repairs = self.config.max_repairs if max_repairs is None else max_repairs
        conversation, result = list(messages), StructuredResult(None, [])
        for round_ in range(max_repairs + 1):
            completion = self.complete(conversation, template=template, sample=sample, **params)
            parsed = parse_structured(completion.text, schema)
            result.completions.append(completion)
            result.repairs, result.value, result.problems = parsed.repairs, None, parsed.errors
            for repair in parsed.repairs:
                self.usage.count("events", f"json_{repair}")
            if parsed.ok:
                result.value, result.problems = check(parsed.value) if check else (parsed.value, [])
            if result.ok:
                return result
            cause = cutoff_problem(completion.finish_reason, "truncated" in parsed.repairs)
            if cause:
                result.problems.insert(0, cause)
            if round_ < max_repairs:
                self.usage.count("events", "repair_requests")
                bullets = "\n".join(f"- {p}" for p in result.problems)
                conversation = conversation + [
                    {"role": "assistant", "content": completion.text},
                    *self.repair_template.render(problems=bullets),
                ]
        self.usage.count("events", "rejected_replies")
        return result


def cutoff_problem(finish_reason: str | None, unfinished_json: bool) -> str | None:
    """What to tell the model about a reply that ended early: cut off at the token limit
    only when the server says so (``finish_reason`` "length"); JSON left open by a model that
    stopped on its own is a malformed reply, not a cut-off one."""
    if finish_reason == "length":
        return "the reply was cut off at the token limit: keep it shorter"
    if unfinished_json:
        stopped = f" although the model stopped on its own (finish_reason {finish_reason!r})" if finish_reason else ""
        return f"the reply ends inside unfinished JSON (an unclosed bracket or string){stopped}: send complete JSON"
    return None


def _unpack(response, messages: list[dict]) -> CachedReply:
    try:
        choice = response.choices[0]
        text = choice.message.content
    except (AttributeError, IndexError, TypeError):
        raise BadResponse("the reply is not a chat completion") from None
    if not isinstance(text, str):
        raise BadResponse("the reply has no message content")
    usage = getattr(response, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if prompt is None or completion is None:  # some local servers send no usage: estimate it
        prompt, completion = approx_tokens(messages), approx_tokens(text)
    return CachedReply(text, choice.finish_reason, int(prompt), int(completion), time.time())

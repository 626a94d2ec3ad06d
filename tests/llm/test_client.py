"""The client layer against a real HTTP server: faults, retries, repair, cache, limits, secrecy."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from af2.llm import FatalError, LLMConfig, RequestRejected, RetriesExhausted, Secret
from af2.llm.ratelimit import RateLimiter
from af2.llm.retry import retry_after
from af2.llm.templates import PromptTemplate
from tests.llm.conftest import KEY, make_client
from tests.llm.server import Reply, completion, error

MESSAGES = [{"role": "user", "content": "Give me items."}]
SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "minItems": 2, "items": {"type": "string"}}},
}
GOOD = completion(json.dumps({"items": ["a", "b"]}))


def script(*replies: Reply):
    """Replies in order; the last one repeats."""
    return lambda index, body: replies[min(index, len(replies) - 1)]


def test_timeout_is_retried(serve):
    server = serve(script(Reply(delay=2.0, body={}), GOOD))
    client = make_client(server, timeout=0.3)
    assert client.complete(MESSAGES).text == GOOD.body["choices"][0]["message"]["content"]
    assert server.count == 2 and dict(client.usage.retries) == {"timeout": 1}


def test_429_waits_as_long_as_retry_after_says(serve):
    server = serve(
        script(
            error(429, {"Retry-After": "7"}),
            error(429, {"retry-after-ms": "250"}),
            error(429, {"Retry-After": "9999"}),
            GOOD,
        )
    )
    sleeps: list[float] = []
    client = make_client(server, sleeps=sleeps, max_retry_after=60.0)
    client.complete(MESSAGES)
    assert sleeps == [7.0, 0.25, 60.0]  # the header's wait, in ms, and capped at max_retry_after
    assert dict(client.usage.retries) == {"http_429": 3} and client.usage.requests == 4


def test_5xx_backoff_grows_then_succeeds(serve):
    server = serve(script(error(500), error(502), error(503), GOOD))
    sleeps: list[float] = []
    client = make_client(server, sleeps=sleeps, backoff_base=1.0, backoff_max=100.0)
    client.complete(MESSAGES)
    assert len(sleeps) == 3 and 0.5 <= sleeps[0] <= 1.0 <= sleeps[1] <= 2.0 <= sleeps[2] <= 4.0
    assert dict(client.usage.retries) == {"http_500": 1, "http_502": 1, "http_503": 1}


def test_gives_up_after_max_retries(serve):
    server = serve(script(error(503)))
    client = make_client(server, max_retries=2)
    with pytest.raises(RetriesExhausted, match="http_503 after 3 attempts"):
        client.complete(MESSAGES)
    assert server.count == 3


@pytest.mark.parametrize("status, exc", [(401, FatalError), (404, FatalError), (400, RequestRejected)])
def test_client_errors_are_not_retried(serve, status, exc):
    server = serve(script(error(status)))
    with pytest.raises(exc):
        make_client(server).complete(MESSAGES)
    assert server.count == 1


@pytest.mark.parametrize(
    "bad", [Reply(200, "this is not json"), Reply(200, {"choices": []}), Reply(200, {"object": "weird"})]
)
def test_a_200_that_is_not_a_completion_is_retried(serve, bad):
    server = serve(script(bad, GOOD))
    client = make_client(server)
    assert json.loads(client.complete(MESSAGES).text) == {"items": ["a", "b"]}
    assert dict(client.usage.retries) == {"bad_response": 1}


def test_malformed_json_gets_a_repair_request(serve):
    server = serve(script(completion("Sure! {items: [oops"), GOOD))
    result = make_client(server).complete_json(MESSAGES, schema=SCHEMA)
    assert result.ok and result.value == {"items": ["a", "b"]} and server.count == 2
    repair = server.requests[1]["messages"]
    assert repair[:1] == MESSAGES and repair[1] == {"role": "assistant", "content": "Sure! {items: [oops"}
    assert "invalid JSON" in repair[2]["content"] and "corrected JSON only" in repair[2]["content"]


def test_partial_json_is_salvaged_without_a_request(serve):
    server = serve(script(completion('{"items": ["a", "b", "c', finish_reason="length")))
    result = make_client(server).complete_json(MESSAGES, schema=SCHEMA)
    assert result.ok and result.value == {"items": ["a", "b"]} and result.repairs == ["truncated"]
    assert server.count == 1


def test_partial_json_too_short_asks_for_a_shorter_reply(serve):
    server = serve(script(completion('{"items": ["a", "b', finish_reason="length"), GOOD))
    result = make_client(server).complete_json(MESSAGES, schema=SCHEMA)
    assert result.ok and server.count == 2
    assert "cut off at the token limit" in server.requests[1]["messages"][-1]["content"]


def test_schema_violation_is_rejected_after_max_repairs(serve):
    server = serve(script(completion('{"wrong": 1}')))
    client = make_client(server, max_repairs=2)
    result = client.complete_json(MESSAGES, schema=SCHEMA)
    assert not result.ok and result.value is None and server.count == 3
    assert result.problems == ["$: 'items' is a required property"]
    assert client.usage.events["repair_requests"] == 2 and client.usage.events["rejected_replies"] == 1


def test_content_check_failures_are_sent_back(serve):
    server = serve(script(completion('{"items": ["a", "bad"]}'), GOOD))
    check = lambda v: (v, [f"item {x!r} is bad" for x in v["items"] if x == "bad"])  # noqa: E731
    result = make_client(server).complete_json(MESSAGES, schema=SCHEMA, check=check)
    assert result.ok and len(result.completions) == 2
    assert "- item 'bad' is bad" in server.requests[1]["messages"][-1]["content"]


def test_json_mode_and_params_are_sent(serve):
    server = serve(script(GOOD))
    make_client(server, temperature=0.3, max_tokens=77).complete_json(MESSAGES, schema=SCHEMA)
    sent = server.requests[0]
    assert sent["response_format"] == {"type": "json_object"} and sent["temperature"] == 0.3
    assert sent["max_tokens"] == 77 and sent["model"] == "test-model"
    make_client(server, json_mode=False).complete_json(MESSAGES, schema=SCHEMA)
    assert "response_format" not in server.requests[1]


def test_cache_makes_reruns_free_and_keys_on_template_version(serve, tmp_path):
    server = serve(script(GOOD))
    template = PromptTemplate.parse("t", 1, "[user]\nGive me $what.")
    edited = PromptTemplate.parse("t", 1, "[user]\nGive me $what.\n")  # same prompt, edited file
    client = make_client(server, cache_path=tmp_path / "c.sqlite")
    first = client.complete(template.render(what="items"), template=template)
    again = client.complete(template.render(what="items"), template=template)
    assert server.count == 1 and not first.cached and again.cached and again.created == first.created
    later = make_client(server, cache_path=tmp_path / "c.sqlite")  # a new process, the same file
    assert later.complete(template.render(what="items"), template=template).cached and server.count == 1
    assert later.usage.cache_hits == 1 and later.usage.requests == 0 and later.usage.cost_usd == 0
    later.complete(template.render(what="items"), template=PromptTemplate.parse("t", 2, "[user]\nGive me $what."))
    later.complete(edited.render(what="items"), template=edited)
    later.complete(template.render(what="items"), template=template, sample=1)
    later.complete(template.render(what="items"), template=template, temperature=0.9)
    assert server.count == 5


def test_errors_are_not_cached(serve, tmp_path):
    server = serve(script(error(400), GOOD))
    client = make_client(server, cache_path=tmp_path / "c.sqlite")
    with pytest.raises(RequestRejected):
        client.complete(MESSAGES)
    assert not client.complete(MESSAGES).cached and server.count == 2


def test_identical_concurrent_calls_are_sent_once(serve, tmp_path):
    server = serve(script(Reply(200, GOOD.body, delay=0.3)))
    client = make_client(server, cache_path=tmp_path / "c.sqlite")
    results = []
    threads = [threading.Thread(target=lambda: results.append(client.complete(MESSAGES))) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert server.count == 1 and len(results) == 4 and sum(not r.cached for r in results) == 1


def test_concurrency_limit(serve):
    server = serve(script(Reply(200, GOOD.body, delay=0.15)))
    client = make_client(server, concurrency=2)
    threads = [
        threading.Thread(target=client.complete, args=([{"role": "user", "content": str(i)}],)) for i in range(6)
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert server.count == 6 and server.max_in_flight == 2


class FakeClock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_requests_per_minute():
    clock = FakeClock()
    limiter = RateLimiter(rpm=30, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        limiter.acquire()
    assert clock.now == pytest.approx(6.0)  # one request every 2 s, the first at once


def test_rate_limiter_tokens_per_minute_and_settle():
    clock = FakeClock()
    limiter = RateLimiter(tpm=600, clock=clock, sleep=clock.sleep)  # 10 tokens/s, bucket of 10
    limiter.acquire(5)
    assert clock.now == 0.0
    limiter.acquire(10)  # 5 left: wait 0.5 s for a full bucket
    assert clock.now == pytest.approx(0.5)
    limiter.settle(estimated=10, actual=30)  # the call used 20 more: 2 s of debt
    limiter.acquire(1)
    assert clock.now == pytest.approx(2.6)
    limiter.acquire(1000)  # more than the bucket holds: waits for a full bucket, then owes
    assert clock.now == pytest.approx(3.6)


def _clocked(clock: FakeClock, reply: Reply):
    """A responder that notes the (fake) time each request reaches the server."""
    arrivals = []

    def respond(index, body):
        arrivals.append(clock.now)
        return reply

    return respond, arrivals


def test_client_paces_requests_per_minute_at_the_server(serve):
    clock = FakeClock()
    respond, arrivals = _clocked(clock, GOOD)
    server = serve(respond)
    client = make_client(server, clock=clock, rpm=30, concurrency=1)
    for i in range(4):  # distinct prompts: no cache, no in-flight sharing
        client.complete([{"role": "user", "content": f"request {i}"}])
    assert server.count == 4 and arrivals == pytest.approx([0.0, 2.0, 4.0, 6.0])  # one every 2 s
    assert client.report().rate_limit_wait_s == pytest.approx(6.0)


@pytest.mark.parametrize("used,interval", [(30, 3.0), (60, 6.0)])
def test_client_paces_tokens_per_minute_by_the_servers_count(serve, used, interval):
    clock = FakeClock()
    reply = completion("ok")
    reply.body["usage"] = {"prompt_tokens": used - 10, "completion_tokens": 10, "total_tokens": used}
    respond, arrivals = _clocked(clock, reply)
    server = serve(respond)
    client = make_client(server, clock=clock, tpm=600, concurrency=1)  # 10 tokens/s
    for i in range(4):
        client.complete([{"role": "user", "content": f"request {i}"}])
    # the estimate (prompt + max_tokens 2048) is settled to what the server counted: `used` tokens
    # a call at 10 tokens/s is one call every used/10 s, whatever the estimate was
    assert arrivals == pytest.approx([0.0, interval, 2 * interval, 3 * interval])
    assert client.usage.prompt_tokens == 4 * (used - 10)


def test_retry_after_header_forms():
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_config_precedence_and_secret():
    env = {
        "AF2_LLM_MODEL": "env-model",
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": "http://fallback/v1",
        "AF2_LLM_BASE_URL": "http://primary/v1",
        "AF2_LLM_RPM": "120",
        "AF2_LLM_JSON_MODE": "off",
    }
    config = LLMConfig.from_env(env, model="flag-model")
    assert config.model == "flag-model" and config.base_url == "http://primary/v1"
    assert config.rpm == 120.0 and config.json_mode is False and config.api_key.reveal() == KEY
    assert KEY not in repr(config) and KEY not in str(config) and Secret(None).reveal() is None


def test_key_is_never_logged(serve, caplog):
    server = serve(script(error(429, {"Retry-After": "0"}), error(500), GOOD, error(401)))
    client = make_client(server)
    with caplog.at_level(logging.DEBUG):
        client.complete(MESSAGES)
        with pytest.raises(FatalError) as failure:
            client.complete([{"role": "user", "content": "again"}])
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"  # the key was really used
    assert "retry 1/3" in caplog.text and "Retrying" not in caplog.text
    for text in (caplog.text, str(failure.value), repr(client.config), json.dumps(client.report().to_dict())):
        assert KEY not in text


def test_unfinished_json_from_a_model_that_stopped_is_not_called_cut_off(serve):
    server = serve(script(completion('{"items": ["a", "b', finish_reason="stop"), GOOD))
    result = make_client(server).complete_json(MESSAGES, schema=SCHEMA)
    assert result.ok and server.count == 2
    repair = server.requests[1]["messages"][-1]["content"]
    assert "cut off at the token limit" not in repair
    assert "unfinished JSON" in repair and "finish_reason 'stop'" in repair

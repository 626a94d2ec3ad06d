"""What the real engine cannot be made to do on demand, with a stand-in engine
(tests/serve/fake_engine.py): /health and requests while the model loads, a failed load, and a
request the engine fails mid-answer (streamed and not)."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from tests.serve.fake_engine import FakeEngine
from tests.serve.support import LiveServer, audio_message, encoded, wave


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=30)


def test_503_while_loading_then_ready():
    from af2.serve.app import create_app

    release = threading.Event()

    def slow_load():
        release.wait(30)
        return FakeEngine()

    with LiveServer(create_app(slow_load, model_name="fake")) as server:
        health = httpx.get(server.url + "/health")
        assert health.status_code == 503 and health.json() == {"status": "loading"}
        with pytest.raises(openai.APIStatusError) as err:
            _client(server).chat.completions.create(model="fake", messages=audio_message("hi", encoded(wave(0.5, 0))))
        assert err.value.status_code == 503 and err.value.body["code"] == "model_loading"
        assert _client(server).models.list().data[0].id == "fake"  # the name is known before the model is
        release.set()
        server.wait_ready()
        answer = _client(server).chat.completions.create(
            model="fake", messages=audio_message("hi there", encoded(wave(0.5, 0)))
        )
        assert answer.choices[0].message.content == "hi there | 0.50"


def test_a_failed_load_keeps_health_503_and_tells_the_owner():
    from af2.serve.app import create_app

    failures = []

    def broken():
        raise OSError("weights are corrupt")

    with LiveServer(create_app(broken, model_name="fake", on_load_error=failures.append)) as server:
        server.app.state.engines.loaded.wait(10)
        assert httpx.get(server.url + "/health").json() == {"status": "failed"}
        with pytest.raises(openai.APIStatusError) as err:
            _client(server).chat.completions.create(model="fake", messages=audio_message("hi", encoded(wave(0.5, 0))))
        assert err.value.status_code == 503 and err.value.body["code"] == "model_load_failed"
    assert [str(e) for e in failures] == ["weights are corrupt"]


def test_a_request_the_engine_fails_is_an_error_not_a_crash():
    from af2.serve.app import create_app

    with LiveServer(create_app(lambda: FakeEngine(fail_after=2), model_name="fake")) as server:
        server.wait_ready()
        client = _client(server)
        messages = audio_message("one two three four", encoded(wave(0.5, 0)))
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model="fake", messages=messages)
        assert err.value.body["code"] == "generation_error"
        received = []
        with pytest.raises(openai.APIError, match="generation failed"):
            for chunk in client.chat.completions.create(model="fake", messages=messages, stream=True):
                received.append(chunk.choices[0].delta.content if chunk.choices else None)
        assert "".join(x for x in received if x) == "one two"  # what came before the failure
        short = client.chat.completions.create(model="fake", messages=messages, max_tokens=2)
        assert short.choices[0].message.content == "one two"  # the server goes on

"""A server with one batch slot and one queue place, the real engine: the request past the queue
gets 429 while the others are answered, and a client that disconnects mid-stream frees its slot
(its request is cancelled, the queued one then runs)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from tests.serve.support import LiveServer, audio_message, encoded, wave

NAME = "af2-tiny"


@pytest.fixture(scope="module")
def server(model_dir):
    from af2.cli.serve import engine_loader
    from af2.serve.app import create_app
    from af2.serve.engine import EngineConfig

    config = EngineConfig(max_batch_size=1, max_queue=1, max_new_tokens=1800, batch_buckets=(1,), compile=False)
    with LiveServer(create_app(engine_loader(model_dir, "cpu", config), model_name=NAME, max_new_tokens=8)) as live:
        yield live.wait_ready()


def _until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_queue_full_is_429_and_a_disconnect_frees_the_slot(server, offline, caplog):
    caplog.set_level("INFO", logger="af2.serve.requests")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)
    data = encoded(wave(2.0, seed=11))
    long = {
        "model": NAME,
        "messages": audio_message("Tell me everything.", data),
        "max_tokens": 1800,
        "stream": True,
    }  # outlasts the test under any load
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=long, timeout=120) as streamed:
        lines = streamed.iter_lines()
        assert json.loads(next(line for line in lines if line)[6:])["choices"][0]["delta"]["role"] == "assistant"
        assert json.loads(next(line for line in lines if line)[6:])["choices"][0]["delta"]["content"]  # decoding
        queued = {}
        waiting = threading.Thread(
            target=lambda: queued.update(
                reply=client.chat.completions.create(model=NAME, messages=audio_message("Short?", data), max_tokens=3)
            )
        )
        waiting.start()
        _until(lambda: server.engine.stats() and _queued(server.engine.stats()) == 1)
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model=NAME, messages=audio_message("One more?", data))
        assert err.value.status_code == 429 and err.value.response.json()["error"]["type"] == "rate_limit_error"
        assert not queued  # still waiting behind the long answer
    # the stream is closed unread: the long request is cancelled, the queued one gets the slot
    waiting.join(60)
    assert queued["reply"].choices[0].message.content == offline("Short?", data, 3)[0]
    _until(lambda: _running(server.engine.stats()) == 0 and _queued(server.engine.stats()) == 0)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "af2.serve.requests"]
    assert [(x["status"], x.get("code")) for x in lines] == [
        (429, "queue_full"),
        (499, "client_disconnected"),
        (200, None),
    ]


def _running(stats: dict) -> int:
    return stats["running"]


def _queued(stats: dict) -> int:
    return stats["waiting"]

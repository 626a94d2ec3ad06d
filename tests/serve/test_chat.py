"""``POST /v1/chat/completions`` with the real ``openai`` client against the app and the real
engine on a tiny saved model: answers equal offline ``model.generate`` (greedy), streamed or not;
every error class in OpenAI's shape; 64 requests from 16 clients, each answered completely and
with its own answer."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest

from tests.serve.support import LiveServer, audio_message, encoded, wave

KEY = "sk-test-3f9c2a7e"
NAME = "af2-tiny"
MAX_NEW = 8  # the server's default answer length in this module


@pytest.fixture(scope="module")
def server(model_dir):
    from af2.cli.serve import engine_loader
    from af2.serve.app import create_app
    from af2.serve.engine import EngineConfig

    config = EngineConfig(
        max_batch_size=4, max_queue=32, max_audio_seconds=30.0, max_new_tokens=16, max_prompt_tokens=48, compile=False
    )
    app = create_app(
        engine_loader(model_dir, "cpu", config),
        model_name=NAME,
        api_key=KEY,
        max_new_tokens=MAX_NEW,
        max_audio_seconds=30.0,
        max_body_bytes=4 << 20,
    )
    with LiveServer(app) as live:
        yield live.wait_ready()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def test_answers_equal_offline_generate(client, offline):
    for i, (seconds, fmt, prompt) in enumerate([(1.0, "wav", "What is this?"), (12.5, "flac", "Count the beeps.")]):
        data = encoded(wave(seconds, seed=i), fmt)
        reply = client.chat.completions.create(model=NAME, messages=audio_message(prompt, data), max_tokens=6)
        text, tokens, reason = offline(prompt, data, 6)
        assert reply.choices[0].message.content == text
        assert reply.choices[0].finish_reason == reason and reply.choices[0].message.role == "assistant"
        assert reply.usage.completion_tokens == tokens
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + tokens and reply.usage.prompt_tokens > 0
        assert reply.id.startswith("chatcmpl-") and reply.model == NAME and reply.object == "chat.completion"


def test_stereo_at_another_rate_and_the_default_length(client, offline):
    stereo = np.stack([wave(2.0, seed=7), wave(2.0, seed=8)])
    data = encoded(stereo, "wav", rate=16000)
    reply = client.chat.completions.create(model=NAME, messages=audio_message("Which side?", data))
    assert reply.choices[0].message.content == offline("Which side?", data, MAX_NEW)[0]
    data = encoded(wave(3.0, seed=9)[::2].copy(), "wav", rate=8000)
    reply = client.chat.completions.create(model=NAME, messages=audio_message("Slow?", data), max_completion_tokens=5)
    assert reply.choices[0].message.content == offline("Slow?", data, 5)[0]


def test_the_prompt_is_the_last_user_turn_and_the_audio_its_one_part(client, offline):
    data = encoded(wave(2.0, seed=3))
    messages = [
        {"role": "system", "content": "You are helpful."},
        *audio_message("What is it?", data),
        {"role": "assistant", "content": "a dog"},
        {"role": "user", "content": [{"type": "text", "text": "How many "}, {"type": "text", "text": "barks?"}]},
    ]
    reply = client.chat.completions.create(model=NAME, messages=messages, max_tokens=4)
    assert reply.choices[0].message.content == offline("How many barks?", data, 4)[0]


def test_stop_strings_and_seeded_sampling(client, offline):
    for seed in range(12, 40):  # a clip whose greedy answer has two ASCII letters after its start
        data = encoded(wave(3.0, seed=seed))
        text = offline("Go on.", data, MAX_NEW)[0]
        pairs = [text[i : i + 2] for i in range(1, len(text) - 1)]
        cut = next((i + 1 for i, pair in enumerate(pairs) if pair.isascii() and pair.isalpha()), None)
        if cut is not None:
            break
    stop = text[cut : cut + 2]
    reply = client.chat.completions.create(model=NAME, messages=audio_message("Go on.", data), stop=[stop, "\x00\x00"])
    assert reply.choices[0].message.content == text[: text.index(stop)] and reply.choices[0].finish_reason == "stop"
    sampled = [
        client.chat.completions.create(
            model=NAME, messages=audio_message("Go on.", data), temperature=1.5, top_p=0.9, seed=seed
        )
        .choices[0]
        .message.content
        for seed in (7, 7, 8, 9, 10)
    ]
    assert sampled[0] == sampled[1]  # the same seed, the same answer
    assert len(set(sampled)) > 1  # other seeds draw other answers


def test_streaming_yields_the_same_text_and_usage(client, offline):
    data = encoded(wave(4.0, seed=5), "ogg")
    chunks = list(
        client.chat.completions.create(
            model=NAME,
            messages=audio_message("What happens?", data),
            max_tokens=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text, tokens, reason = offline("What happens?", data, 7)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == tokens
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"
    plain = list(client.chat.completions.create(model=NAME, messages=audio_message("What happens?", data), stream=True))
    assert all(c.usage is None for c in plain)  # usage only when asked for


def test_the_documented_client_snippets_run(server, tmp_path, capsys):
    """The ``py`` blocks of docs/server.md and the README that call the server, as written
    but for the address, key, model name and clip."""
    import re
    from pathlib import Path

    import soundfile as sf

    root = Path(__file__).resolve().parents[2]
    sf.write(tmp_path / "clip.wav", wave(1.5, seed=21), 16000)
    blocks = [
        code
        for doc in (root / "docs" / "server.md", root / "README.md")
        for code in re.findall(r"```py\n(.*?)```", doc.read_text(), flags=re.S)
        if "chat.completions" in code
    ]
    assert blocks
    for code in blocks:
        code = code.replace("http://127.0.0.1:8000/v1", server.url + "/v1").replace('api_key="KEY"', f'api_key="{KEY}"')
        code = code.replace('model="af2"', f'model="{NAME}"').replace('"clip.wav"', repr(str(tmp_path / "clip.wav")))
        code = re.sub(r"max_tokens=\d+", "max_tokens=8", code)
        exec(compile(code, "snippet", "exec"), {})
        assert capsys.readouterr().out.strip()


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [NAME]
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}  # no key needed


def _error(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as err:
        call()
    body = err.value.response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["message"]
    return err.value


GOOD = encoded(wave(1.0, seed=1))


@pytest.mark.parametrize(
    "messages, extra, status, code, param",
    [
        (audio_message("hi", "not base64 !"), {}, 400, "invalid_base64", "messages.0.content.1.input_audio.data"),
        (
            audio_message("hi", base64.b64encode(b"plain text, not audio " * 40).decode()),
            {},
            400,
            "invalid_audio",
            "messages.0.content.1.input_audio.data",
        ),
        (audio_message("hi", GOOD, "xyz"), {}, 400, "invalid_audio_format", "messages.0.content.1.input_audio.format"),
        ([{"role": "user", "content": "no audio here"}], {}, 400, "missing_audio", "messages"),
        (audio_message("a", GOOD) + audio_message("b", GOOD), {}, 400, "too_many_audio", None),
        (audio_message("hi", GOOD), {"extra_body": {"best_of": 2}}, 400, "unknown_parameter", "best_of"),
        (audio_message("hi", GOOD), {"temperature": 3.0}, 400, "invalid_value", "temperature"),
        (audio_message("hi", GOOD), {"top_p": 0.0}, 400, "invalid_value", "top_p"),
        (audio_message("hi", GOOD), {"max_tokens": 0}, 400, "invalid_value", "max_tokens"),
        (audio_message("hi", GOOD), {"n": 2}, 400, "unsupported_value", "n"),
        (audio_message("hi", GOOD), {"stop": ["a", "b", "c", "d", "e"]}, 400, "unsupported_value", "stop"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], {}, 400, None, None),
        (audio_message("hi", encoded(wave(31.0, seed=2), "flac")), {}, 413, "audio_too_long", None),
    ],
)
def test_bad_requests_are_refused_in_openai_shape(client, messages, extra, status, code, param):
    err = _error(lambda: client.chat.completions.create(model=NAME, messages=messages, **extra))
    body = err.response.json()["error"]
    assert err.status_code == status, body
    if code is not None:
        assert body["code"] == code, body
    if param is not None:
        assert body["param"] == param, body
    assert body["type"] == "invalid_request_error"


def test_a_prompt_over_the_limit_or_too_many_tokens_is_400(client):
    words = " ".join(f"w{i}" for i in range(200))
    err = _error(lambda: client.chat.completions.create(model=NAME, messages=audio_message(words, GOOD)))
    assert err.status_code == 400 and err.response.json()["error"]["param"] == "messages"
    err = _error(lambda: client.chat.completions.create(model=NAME, messages=audio_message("hi", GOOD), max_tokens=17))
    assert err.status_code == 400 and err.response.json()["error"]["param"] == "max_tokens"  # over the engine's 16


def test_bad_json_wrong_key_unknown_model_unknown_route(server, client):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    bad = httpx.post(server.url + "/v1/chat/completions", content=b'{"model": ', headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        refused = httpx.post(server.url + "/v1/chat/completions", json={"model": NAME}, headers=auth)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key", refused.text
        assert KEY not in refused.text
    assert httpx.get(server.url + "/v1/models").status_code == 401
    wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    err = _error(lambda: client.chat.completions.create(model="gpt-4o", messages=audio_message("hi", GOOD)))
    assert err.status_code == 404 and err.response.json()["error"]["code"] == "model_not_found"
    big = httpx.post(server.url + "/v1/chat/completions", content=b" " * (5 << 20), headers=headers)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    missing = httpx.get(server.url + "/v1/nothing", headers=headers)
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_64_requests_from_16_clients_each_get_their_own_whole_answer(server, client, offline):
    inputs = [(f"Question {i}?", encoded(wave([0.5, 2.0, 6.0, 11.0][i % 4], seed=100 + i))) for i in range(16)]
    jobs = [(j, *inputs[j % 16], 2 + j % 7, j % 3 == 0) for j in range(64)]

    def ask(job):
        j, prompt, data, max_tokens, stream = job
        args = dict(model=NAME, messages=audio_message(prompt, data), max_tokens=max_tokens)
        if not stream:
            reply = client.chat.completions.create(**args)
            return j, reply.id, reply.choices[0].message.content, reply.choices[0].finish_reason, reply.usage
        chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reason = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        return j, chunks[0].id, text, reason, chunks[-1].usage

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(ask, jobs))
    assert sorted(r[0] for r in results) == list(range(64)) and len({r[1] for r in results}) == 64
    for (j, prompt, data, max_tokens, _), (_, _, text, reason, usage) in zip(jobs, results):
        assert (text, usage.completion_tokens, reason) == offline(prompt, data, max_tokens), j
    stats = server.engine.stats()
    assert json.dumps(stats)  # plain data

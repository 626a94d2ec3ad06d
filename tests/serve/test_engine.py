"""The decoding engine on the tiny preset: greedy tokens equal generate's with requests of
different audio lengths and prompts joining and leaving mid-run, cancellation, every refusal,
shutdown, failing callbacks, seeded sampling, stop strings, the compiled step."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from af2.serve.engine import Engine, EngineConfig
from af2.serve.protocol import Finished, GenerationRequest, RequestRejected, SamplingParams, TokenDelta

from .conftest import clip, generate_ids

N = 10


def run_all(handles) -> list[tuple[list[int], str, Finished]]:
    """(token ids, concatenated delta text, Finished) of each handle, in order."""
    out = []
    for h in handles:
        ids, text, fin = [], "", None
        for ev in h:
            if isinstance(ev, TokenDelta):
                ids += ev.token_ids
                text += ev.text
            else:
                fin = ev
        out.append((ids, text, fin))
    return out


@pytest.fixture
def engine(model, processor):
    engines = []

    def make(**kw):
        kw.setdefault("max_new_tokens", 32)
        e = Engine(model, processor, EngineConfig(**kw)).start()
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.shutdown(timeout=5)


REQUESTS = [
    ("How many beeps?", clip(3.0, 1), N),
    ("Which instrument plays?", clip(14.0, 2), 4),  # 2 windows; leaves early
    ("Say something", None, N),  # text-only
    ("Describe the recording", clip(7.5, 3), N),
    ("Is it loud?", clip(21.0, 4), 6),  # 3 windows
]


@pytest.fixture(scope="module")
def references(model, processor):
    return [generate_ids(model, processor, p, a, n) for p, a, n in REQUESTS]


def test_greedy_equals_generate_with_requests_joining_and_leaving(engine, references):
    """Two slots for five requests: the later ones wait, then join as earlier ones leave; one
    joins while another is mid-answer."""
    eng = engine(max_batch_size=2)
    first = eng.submit(GenerationRequest("r0", REQUESTS[0][0], REQUESTS[0][1], params=SamplingParams(N)))
    events = iter(first)
    head = [next(events) for _ in range(3)]  # r0 has decoded 3 tokens before the others arrive
    rest = [
        eng.submit(GenerationRequest(f"r{i}", p, a, params=SamplingParams(n)))
        for i, (p, a, n) in enumerate(REQUESTS)
        if i > 0
    ]
    got_first = [t for ev in head for t in ev.token_ids] + [t for ev in events for t in getattr(ev, "token_ids", ())]
    assert got_first == references[0]
    for (ids, text, fin), ref in zip(run_all(rest), references[1:]):
        assert ids == ref
        assert fin.text == text
        assert fin.finish_reason in ("stop", "length")
    assert eng.stats() == {"running": 0, "waiting": 0, "finished": 5}


def request(rid: str, i: int = 0, **params) -> GenerationRequest:
    prompt, audio, n = REQUESTS[i]
    params.setdefault("max_new_tokens", n)
    return GenerationRequest(rid, prompt, audio, params=SamplingParams(**params))


def test_cancel_frees_the_slot(engine, references):
    """One slot: a cancelled request's slot takes the next request at once."""
    eng = engine(max_batch_size=1)
    long = eng.submit(request("long", 3, max_new_tokens=32))
    waiting = eng.submit(request("next", 0))
    events = iter(long)
    assert isinstance(next(events), TokenDelta)
    long.cancel()
    rest = list(events)
    assert rest[-1].finish_reason == "cancelled" and rest[-1].completion_tokens < 32
    assert all(isinstance(e, TokenDelta) for e in rest[:-1])
    assert run_all([waiting])[0][0] == references[0]


def test_a_waiting_request_cancelled_never_runs(engine):
    eng = engine(max_batch_size=1)
    first = eng.submit(request("a", 3, max_new_tokens=20))
    second = eng.submit(request("b", 0))
    second.cancel()
    fin = second.result(timeout=30)
    assert fin.finish_reason == "cancelled" and fin.completion_tokens == 0 and fin.text == ""
    assert first.result(timeout=30).finish_reason in ("stop", "length")


def reject(eng, req) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        eng.submit(req)
    return info.value


def test_every_refusal_has_its_status_code_and_param(model, processor, engine):
    cold = Engine(model, processor, EngineConfig(max_new_tokens=32))
    e = reject(cold, request("x"))
    assert (e.status, e.code) == (503, "not_ready")

    eng = engine(max_batch_size=1, max_queue=1, max_new_tokens=32, max_audio_seconds=25.0, max_prompt_tokens=30)
    cases = {
        "max_tokens": (request("a", max_new_tokens=33), 400, "invalid_value"),
        "stop": (request("b", stop=("",)), 400, "invalid_value"),
        "prompt": (GenerationRequest("c", "word " * 40, None, params=SamplingParams(8)), 400, "prompt_too_long"),
        "audio": (GenerationRequest("d", "q", clip(26.0, 5), params=SamplingParams(8)), 413, "audio_too_long"),
    }
    for param, (req, status, code) in cases.items():
        e = reject(eng, req)
        assert (e.status, e.code, e.param) == (status, code, param), (param, e.message)
    bad_audio = [
        np.zeros((2, 2, 100), np.float32),  # 3-D
        np.zeros(0, np.float32),  # empty
        np.array([0.1, np.nan] * 800, np.float32),  # NaN
        np.array(["a"] * 10),  # not numbers
        [0.1] * 1600,  # not an array
    ]
    for audio in bad_audio:
        e = reject(eng, GenerationRequest("e", "q", audio, params=SamplingParams(8)))
        assert (e.status, e.code, e.param) == (400, "invalid_audio", "audio"), e.message
    e = reject(eng, GenerationRequest("f", "q", clip(1.0, 6), sampling_rate=0, params=SamplingParams(8)))
    assert (e.status, e.code, e.param) == (400, "invalid_audio", "audio")
    e = reject(eng, GenerationRequest("g", "<audio> again", clip(1.0, 6), params=SamplingParams(8)))  # a second <audio>
    assert (e.status, e.code, e.param) == (400, "invalid_value", "prompt")

    running = eng.submit(request("r", 3, max_new_tokens=32))
    next(iter(running))  # it holds the only slot
    queued = eng.submit(request("q", 0))
    e = reject(eng, request("r", 0))
    assert (e.status, e.code, e.param) == (400, "duplicate_id", "request_id")
    e = reject(eng, request("full", 0))
    assert (e.status, e.code) == (429, "queue_full")
    running.cancel()
    queued.cancel()
    assert queued.result(timeout=30).finish_reason == "cancelled"
    eng.shutdown()
    e = reject(eng, request("late", 0))
    assert (e.status, e.code) == (503, "shutting_down")
    assert not eng.ready


def test_shutdown_drains_running_and_queued_requests(engine, references):
    eng = engine(max_batch_size=1)
    handles = [eng.submit(request("a", 0)), eng.submit(request("b", 2))]
    eng.shutdown(timeout=60)
    fins = [h.result(timeout=0) for h in handles]
    assert [f.finish_reason in ("stop", "length") for f in fins] == [True, True]
    assert [ids for ids, _, _ in run_all(handles)] == [references[0], references[2]]


def test_shutdown_past_its_timeout_cancels_the_rest(engine):
    eng = engine(max_batch_size=1)
    stopping = threading.Thread(target=eng.shutdown, kwargs={"timeout": 0})

    def on_first(event):
        # The engine thread stays here until shutdown gave up waiting, so nothing can finish first.
        if not stopping.is_alive() and not eng._force_stop:
            stopping.start()
            while not eng._force_stop:
                stopping.join(0.001)

    running = eng.submit(request("a", 3, max_new_tokens=32), on_event=on_first)
    queued = eng.submit(request("b", 0))
    stopping_joined = running.result(timeout=60)
    assert stopping_joined.finish_reason == "cancelled"
    assert queued.result(timeout=60).finish_reason == "cancelled"
    stopping.join()
    assert eng.stats()["running"] == 0 and not eng.ready


def test_a_raising_callback_cancels_only_its_request(engine, references):
    eng = engine(max_batch_size=2)
    seen = []

    def bad(event):
        seen.append(event)
        raise RuntimeError("consumer gone")

    doomed = eng.submit(request("bad", 3, max_new_tokens=32), on_event=bad)
    fine = eng.submit(request("good", 0))
    assert doomed.result(timeout=60).finish_reason == "cancelled"
    assert len(seen) == 1  # never called again after it raised
    assert run_all([fine])[0][0] == references[0]
    again = eng.submit(request("again", 2))
    assert run_all([again])[0][0] == references[2]


def test_a_failing_prefill_fails_its_request_and_the_engine_goes_on(engine, model, references, monkeypatch):
    eng = engine(max_batch_size=2)
    original = model.encode_media

    def broken(*args, **kwargs):
        monkeypatch.setattr(model, "encode_media", original)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "encode_media", broken)
    fin = eng.submit(request("boom", 0)).result(timeout=60)
    assert fin.finish_reason == "error" and "out of memory" in fin.error
    assert run_all([eng.submit(request("after", 0))])[0][0] == references[0]


def test_seeded_sampling_is_reproducible_whatever_runs_beside_it(engine):
    eng = engine(max_batch_size=4)
    sampled = dict(max_new_tokens=12, temperature=1.5, top_p=0.95, seed=1234)
    alone = run_all([eng.submit(request("alone", 3, **sampled))])[0][0]
    crowd = [
        eng.submit(request("n1", 0, temperature=1.0, seed=1)),
        eng.submit(request("n2", 1, temperature=2.0)),
        eng.submit(request("again", 3, **sampled)),
        eng.submit(request("n3", 2)),
    ]
    assert run_all(crowd)[2][0] == alone
    other_seed = run_all([eng.submit(request("other", 3, **{**sampled, "seed": 99}))])[0][0]
    assert other_seed != alone  # the seed is what fixes the draws


def test_stop_strings_end_the_answer_and_never_appear(engine, processor):
    eng = engine(max_batch_size=2)
    _, text, fin = run_all([eng.submit(request("plain", 3, max_new_tokens=12))])[0]
    assert fin.text == text and len(text) > 6
    stop = text[3:6]
    _, streamed, fin = run_all([eng.submit(request("cut", 3, max_new_tokens=12, stop=("zzzz", stop)))])[0]
    assert fin.finish_reason == "stop"
    assert fin.text == streamed == text[: text.find(stop)]
    assert stop not in fin.text


@pytest.mark.slow
def test_the_compiled_step_gives_the_eager_tokens(engine, references):
    """torch.compile of the decode step (one batch bucket, a short cache: one graph to build)."""
    eng = engine(max_batch_size=1, compile=True, max_new_tokens=16, max_prompt_tokens=24, max_seq_len=48)
    assert eng.compiled and eng.ready
    got = run_all([eng.submit(request("c0", 0)), eng.submit(request("c2", 2))])
    assert [ids for ids, _, _ in got] == [references[0], references[2]]


def test_submit_many_queues_all_or_none(engine, references):
    eng = engine(max_batch_size=2, max_queue=1)
    e = reject_many(eng, [request("m0", 0), request("m1", 2), request("m2", 0), request("m3", 2)])  # 2 slots + 1
    assert (e.status, e.code) == (429, "queue_full")
    e = reject_many(eng, [request("d", 0), request("d", 2)])
    assert (e.status, e.code, e.param) == (400, "duplicate_id", "request_id")
    assert eng.stats()["waiting"] == 0  # nothing of a refused call was queued
    got = run_all(eng.submit_many([request("m0", 0), request("m1", 2), request("m2", 0)]))
    assert [ids for ids, _, _ in got] == [references[0], references[2], references[0]]


def reject_many(eng, reqs) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        eng.submit_many(reqs)
    return info.value

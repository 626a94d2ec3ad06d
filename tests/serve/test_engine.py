"""The decoding engine on the tiny preset: greedy tokens equal generate's with requests of
different audio lengths and prompts joining and leaving mid-run, cancellation, every refusal,
shutdown, failing callbacks, seeded sampling, stop strings, the compiled step."""

from __future__ import annotations

import pytest

from af2.serve.engine import Engine, EngineConfig
from af2.serve.protocol import Finished, GenerationRequest, SamplingParams, TokenDelta

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

"""``infer.run`` isolates items: an over-long prompt or a failing item is an error line of its
own, never an allocation or the loss of its batch; cut audio is flagged and named."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from af2.errors import InputError
from af2.eval import infer
from af2.model import AF2Config, AudioFlamingo2
from af2.text.tokens import tiny_tokenizer

SR = 16000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()


@pytest.fixture
def clips(tmp_path):
    tone = lambda seconds: 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(SR * seconds)) / SR)  # noqa: E731
    sf.write(tmp_path / "short.wav", tone(3), SR)
    sf.write(tmp_path / "long.wav", tone(25), SR)  # 3 windows
    return tmp_path


class Spy:
    """Wraps ``model.forward`` (each prompt's prefill in the decoding engine): records the
    prompt text of each call with a prompt; raises for a prompt holding ``poison``."""

    def __init__(self, model, poison: str | None = None):
        self.model, self.poison, self.calls = model, poison, []
        self.forward = model.forward

    def __call__(self, *args, input_ids=None, **kwargs):
        if input_ids is not None and input_ids.shape[1] > 1:
            text = self.model.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
            self.calls.append(text)
            if self.poison is not None and any(self.poison in t for t in text):
                raise RuntimeError("CUDA out of memory (scripted)")
        return self.forward(*args, input_ids=input_ids, **kwargs)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_prompt_longer_than_the_context_is_an_item_error(model, clips, monkeypatch):
    spy = Spy(model)
    monkeypatch.setattr(model, "forward", spy)
    huge = "why " * 25_000  # 100k characters
    reqs = [
        infer.Request("ok1", clips / "short.wav", "What is it?"),
        infer.Request("huge", clips / "short.wav", huge),
        infer.Request("ok2", clips / "short.wav", "Again?"),
    ]
    out = clips / "preds.jsonl"
    result = infer.run(model, reqs, output=out, batch_size=3, max_new_tokens=2, progress=False)
    assert result["failed"] == 1 and result["answered"] == 2
    assert sorted(p["id"] for p in lines(out)) == ["ok1", "ok2"]
    [err] = lines(clips / "preds.jsonl.errors.jsonl")
    assert err["id"] == "huge" and "tokens, more than the 2046 that fit" in err["error"]
    assert len(spy.calls) == 2 and all("why why" not in t for call in spy.calls for t in call)  # never run


def test_max_prompt_tokens_is_configurable(model, clips):
    reqs = [infer.Request("a", clips / "short.wav", "a rather long question about the clip")]
    out = clips / "preds.jsonl"
    result = infer.run(model, reqs, output=out, max_new_tokens=2, max_prompt_tokens=4, progress=False)
    assert result["failed"] == 1 and lines(out) == []
    assert "more than the 4 that fit" in lines(clips / "preds.jsonl.errors.jsonl")[0]["error"]


def test_one_failing_item_never_loses_its_batch(model, clips, monkeypatch):
    spy = Spy(model, poison="bad")
    monkeypatch.setattr(model, "forward", spy)
    reqs = [infer.Request(str(i), clips / "short.wav", p) for i, p in enumerate(["one?", "bad", "three?"])]
    out = clips / "preds.jsonl"
    result = infer.run(model, reqs, output=out, batch_size=3, max_new_tokens=2, progress=False)
    assert sorted(p["id"] for p in lines(out)) == ["0", "2"] and result["failed"] == 1
    [err] = lines(clips / "preds.jsonl.errors.jsonl")
    assert err["id"] == "1" and "CUDA out of memory (scripted)" in err["error"]
    # The survivors' answers are those of a run without the bad item.
    alone = infer.run(model, [reqs[0]], output=None, max_new_tokens=2, progress=False)["answers"]
    assert next(p for p in lines(out) if p["id"] == "0")["prediction"] == alone["0"]


def test_truncated_audio_is_flagged_and_named(model, clips, caplog):
    reqs = [infer.Request("long", clips / "long.wav", "What?"), infer.Request("short", clips / "short.wav", "What?")]
    out = clips / "preds.jsonl"
    with caplog.at_level(logging.WARNING):
        result = infer.run(model, reqs, output=out, max_new_tokens=2, max_windows=2, progress=False)
    assert {p["id"]: p["truncated"] for p in lines(out)} == {"long": True, "short": False}
    assert result["truncated"] == 1
    assert any(str(clips / "long.wav") in r.getMessage() and "dropping" in r.getMessage() for r in caplog.records)


def test_a_corrupt_line_in_the_output_loses_nothing(model, clips):
    out = clips / "preds.jsonl"
    good = [{"id": "a", "prediction": "x"}, {"id": "b", "prediction": "y"}]
    out.write_bytes(json.dumps(good[0]).encode() + b"\n\xff\xfe not json\n" + json.dumps(good[1]).encode() + b"\n")
    assert infer.done_ids(out) == {"a", "b"}
    assert out.read_bytes().count(b"\n") == 3  # nothing cut


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -1}, {"max_new_tokens": 0}, {"max_windows": 0}])
def test_bad_settings_are_input_errors(model, clips, kwargs):
    with pytest.raises(InputError, match=">= 1"):
        infer.run(model, [infer.Request("a", clips / "short.wav", "q")], output=None, progress=False, **kwargs)

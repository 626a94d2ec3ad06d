"""Rank classification: the audio of a file is encoded once per batch (and once per model with a
``features`` cache), and the scores are those of encoding every question on its own."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from af2.data.manifest import load_manifest, write_manifest
from af2.eval.choice_scoring import score_choices
from af2.model import AudioFlamingo2
from af2.model.config import AF2Config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("choices")
    rng = np.random.default_rng(0)
    for name, seconds in (("a", 12.0), ("b", 4.0)):
        sf.write(tmp / f"{name}.wav", (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
    rows = [
        {"id": f"q{i}", "audio": f"{audio}.wav", "prompt": f"Question {i}?", "answer": "yes", "choices": ["yes", "no"]}
        for i, audio in enumerate("aabab")
    ]
    write_manifest(tmp / "m.jsonl", rows)
    torch.manual_seed(0)
    model = AudioFlamingo2(AF2Config.preset("tiny")).eval()
    with torch.no_grad():  # open the cross-attention gates (0 at init: the audio would not count)
        for name, p in model.named_parameters():
            if name.startswith("xattn") and name.endswith("_gate"):
                p.fill_(1.0)
    return model, load_manifest(tmp / "m.jsonl", strict=True).samples


def test_shared_audio_scores_as_if_encoded_alone(setup):
    model, samples = setup
    alone = score_choices(model, samples, batch_size=1)
    together = score_choices(model, samples, batch_size=16)
    for a, b in zip(alone, together):
        assert a.id == b.id and np.allclose(a.scores, b.scores, atol=1e-3)
    cache: dict = {}
    first = score_choices(model, samples, features=cache)
    assert len(cache) == 2  # two distinct files
    swapped = score_choices(model, samples, features=cache, audio_map=lambda i: 2 if i == 0 else i)
    again = score_choices(model, samples, features=cache)
    assert [r.scores for r in again] == [r.scores for r in first]
    assert swapped[0].scores != first[0].scores  # q0 asked of file b
    assert [r.scores for r in swapped[1:]] == [r.scores for r in first[1:]]

"""AF2Collator: sample format, labels masked to the answer, windows and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from af2.audio.windows import window_keys
from af2.data.collator import AF2Collator
from af2.data.dataset import AudioItem
from af2.data.manifest import Sample
from af2.data.report import Skipped
from af2.data.synth.scene import qa
from af2.text.prompts import with_choices
from af2.text.sample import IGNORE_INDEX
from af2.text.tokens import AUDIO_TOKEN, EOC_TOKEN, SEP_TOKEN


def _item(
    i: int, seconds: float, prompt="How many beeps?", answer="3 beeps", truncated=False, choices=None
) -> AudioItem:
    s = Sample(Path(f"/x/{i}.wav"), prompt, answer, None, None, "counting", f"s{i}", choices, i + 1)
    return AudioItem(i, s, torch.full((int(seconds * 16000),), float(i + 1)), truncated, seconds)


def test_tokens_and_labels(tokenizer):
    col = AF2Collator(tokenizer, max_windows=3)
    batch = col([_item(0, 4.0), _item(1, 12.0, "Which is louder?", "the first")])
    ids, labels, att = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == att.shape and ids.dtype == labels.dtype == torch.int64
    for row, (prompt, answer) in enumerate([("How many beeps?", "3 beeps"), ("Which is louder?", "the first")]):
        n = int(att[row].sum())
        text = tokenizer.decode(ids[row, :n])
        assert text == f"{AUDIO_TOKEN}{prompt}{SEP_TOKEN}{answer}{EOC_TOKEN}{tokenizer.eos_token}"
        assert (ids[row, n:] == tokenizer.pad_token_id).all() and (labels[row, n:] == IGNORE_INDEX).all()
        supervised = labels[row][labels[row] != IGNORE_INDEX]
        assert tokenizer.decode(supervised) == f"{answer}{EOC_TOKEN}{tokenizer.eos_token}"
        sep = int((ids[row] == tokenizer.sep_token_id).nonzero())
        assert (labels[row, : sep + 1] == IGNORE_INDEX).all()  # <audio>, prompt and <SEP> carry no loss
        assert torch.equal(labels[row, sep + 1 : n], ids[row, sep + 1 : n])
    assert batch["media_locations"].sum(1).tolist() == [1, 1] and batch["media_locations"][:, 0].all()


def test_answer_only_labels(tokenizer):
    batch = AF2Collator(tokenizer, max_windows=3, supervise_end_tokens=False)([_item(0, 1.0, answer="piano")])
    supervised = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]
    assert tokenizer.decode(supervised) == "piano"


def test_windows_masks_and_skips(tokenizer):
    col = AF2Collator(tokenizer, max_windows=3, max_length=12)
    bad = Skipped(5, "s5", "/x/5.wav", "missing", "file not found")
    items = [_item(0, 4.0), bad, _item(1, 25.0, truncated=True), _item(2, 1.0, prompt="a very long question " * 5)]
    batch = col(items)
    assert batch["ids"] == ["s0", "s1"] and batch["indices"] == [0, 1]
    assert batch["audio_windows"].shape == (2, 3, 160000) and batch["audio_windows"].dtype == torch.float32
    assert batch["audio_window_mask"].tolist() == [[True, False, False], [True, True, True]]
    assert batch["num_windows"].tolist() == [1, 3] and batch["truncated"].tolist() == [False, True]
    assert (batch["audio_windows"][0, 0, :64000] == 1).all() and not batch["audio_windows"][0, 0, 64000:].any()
    assert [s.kind for s in batch["skipped"]] == ["missing", "too_long"]
    empty = col([bad])
    assert empty["ids"] == [] and empty["input_ids"].shape == (0, 0) and empty["skipped"] == [bad]
    assert "audio_window_keys" not in batch


def test_window_keys_on_request(tokenizer):
    col = AF2Collator(tokenizer, max_windows=3, window_keys=True)
    batch = col([_item(0, 4.0), _item(1, 25.0)])
    assert torch.equal(batch["audio_window_keys"], window_keys(batch["audio_windows"], batch["audio_window_mask"]))
    assert batch["audio_window_keys"][1].any(dim=1).tolist() == [True, True, True]
    assert col([])["audio_window_keys"].shape == (0, 0, 16)


def test_choices_reach_the_model_once(tokenizer):
    col = AF2Collator(tokenizer, max_windows=3)
    forms = (
        qa("counting", "counting.easy", "How many beeps?", "3", np.random.default_rng(seed), ["2", "3", "4"])
        for seed in range(100)
    )
    listed = next(q for q in forms if q.choices)  # the generator's multiple-choice form of the question
    plain = _item(0, 1.0, prompt="How many beeps?", answer="3", choices=listed.choices)
    synth = _item(1, 1.0, prompt=listed.prompt, answer="3", choices=listed.choices)
    batch = col([plain, synth, _item(2, 1.0, answer="3")])
    # a manifest line with choices but a bare prompt is shown the same block the generator writes
    assert batch["prompts"][0] == listed.prompt == batch["prompts"][1]
    assert listed.prompt.startswith("How many beeps?\nChoose one:\n(A) ")
    assert batch["prompts"][2] == "How many beeps?"
    ids = batch["input_ids"]
    assert torch.equal(ids[0], ids[1])  # same tokens: not listed twice
    text = tokenizer.decode(ids[0][batch["attention_mask"][0]])
    assert text.count("Choose one:") == 1 and all(f"({chr(65 + k)}) {c}" in text for k, c in enumerate(listed.choices))
    assert col.prompt(plain.sample) == listed.prompt and with_choices("Q?", None) == "Q?"


def test_trim_windows_to_batch(tokenizer):
    batch = AF2Collator(tokenizer, max_windows=30)([_item(0, 4.0), _item(1, 12.0)])
    assert batch["audio_windows"].shape == (2, 2, 160000)
    full = AF2Collator(tokenizer, max_windows=30, trim_windows=False)([_item(0, 4.0)])
    assert full["audio_windows"].shape == (1, 30, 160000)


def test_requires_special_tokens():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")), unk_token="[UNK]"
    )
    with pytest.raises(ValueError, match="add_special_tokens"):
        AF2Collator(plain, max_windows=3)

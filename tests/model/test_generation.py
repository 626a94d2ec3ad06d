"""Generation through transformers' GenerationMixin: equal to af2's earlier greedy loop, beam search,
sampling, streaming, stop strings, repetition penalty, batches of different audio lengths."""

from __future__ import annotations

import hashlib
import threading

import pytest
import torch

from af2.model import AF2Config, AudioFlamingo2, AudioFlamingo2Processor
from af2.text.tokens import tiny_tokenizer
from benchmarks.earlier_decoding import greedy_loop

from .conftest import item

# Recorded with af2's model before it became a PreTrainedModel (same seed, same inputs, CPU float32).
RECORDED_STATE = "61af6d551b29c5e7676e6dda43cd23c84b96d55e2a045c5f4d44269e05ee4a05"
# Logits of the eager twins (use_fused_ops(False)): bitwise whatever the fused kernels' summation
# order; the fused logits are checked against them to float error.
RECORDED_EAGER_LOGITS = "62ab688a3620a75ca07ef3e49403f8e3e807e011e35fd6be22d91dfb60d0ef98"
RECORDED_IDS = [[329, 329, 329, 329, 329, 329, 329, 329], [37, 359, 359, 359, 359, 359, 359, 359]]


def _state_hash(model) -> str:
    h = hashlib.sha256()
    sd = model.state_dict()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def test_equals_the_recorded_model_bitwise():
    """Fixed seed -> the same weights, logits and greedy tokens as the model before the change."""
    torch.manual_seed(0)
    model = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    with torch.no_grad():
        for b in model.xattn.values():
            b.attn_gate.fill_(0.3)
            b.ff_gate.fill_(0.3)
    assert _state_hash(model) == RECORDED_STATE
    g = torch.Generator().manual_seed(7)
    waves = [0.1 * torch.randn(16000 * 4, generator=g), 0.1 * torch.randn(16000 * 13, generator=g)]
    prompts = ["How many beeps?", "Which instrument plays?"]
    assert model.generate(waves, prompts, max_new_tokens=8, return_ids=True).tolist() == RECORDED_IDS
    win = model.window_audio(waves)
    ids, mask = model.encode_prompts(prompts)
    with torch.no_grad():
        fused = model(input_ids=ids, attention_mask=mask, audio_windows=win.windows, audio_window_mask=win.mask).logits
        model.use_fused_ops(False)
        eager = model(input_ids=ids, attention_mask=mask, audio_windows=win.windows, audio_window_mask=win.mask).logits
    assert hashlib.sha256(eager.numpy().tobytes()).hexdigest() == RECORDED_EAGER_LOGITS
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-5)


@pytest.fixture
def lively(make_model):
    """A tiny model whose greedy continuation is not one repeated token, and its processor."""
    model = make_model(gates=0.7, seed=3)
    with torch.no_grad():
        for p in model.llm.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return model, AudioFlamingo2Processor.from_config(model.config, tokenizer=model.tokenizer)


@pytest.mark.parametrize("rows", [1, 2])  # 1: no padding (transformers then drops the mask)
def test_greedy_equals_the_earlier_loop(lively, rows):
    model, processor = lively
    waves = [item(0, 4.0).wave, item(1, 23.0).wave][:rows]
    prompts = ["How many beeps?", "Which instrument plays the note A4?"][:rows]
    inputs = processor(text=prompts, audio=waves, normalize=None)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8)
        want = greedy_loop(
            model,
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["audio_windows"],
            inputs["audio_window_mask"],
            8,
        )
    P = inputs["input_ids"].shape[1]
    assert torch.equal(out[:, :P], inputs["input_ids"])
    assert torch.equal(out[:, P:], want) and len(set(want[0].tolist())) > 3


def _sequence_score(model, inputs, seq, P):
    """Sum of log-probabilities of seq's new tokens (up to and including its first stop token)
    under a full forward pass, with `<audio>` suppressed as generation does."""
    t = model.config.token_ids
    ids = seq[None]
    mask = torch.cat([inputs["attention_mask"][:1], torch.ones(1, ids.shape[1] - P, dtype=torch.bool)], 1)
    with torch.no_grad():
        logits = (
            model(
                input_ids=ids,
                attention_mask=mask,
                audio_windows=inputs["audio_windows"][:1],
                audio_window_mask=inputs["audio_window_mask"][:1],
            )
            .logits[0]
            .float()
        )
    logits[:, t["audio"]] = float("-inf")
    logp = logits.log_softmax(-1)
    total = 0.0
    for i in range(P, ids.shape[1]):
        total += float(logp[i - 1, ids[0, i]])
        if int(ids[0, i]) in (t["eoc"], t["eos"]):
            break
    return total


def test_beam_search_returns_the_best_scoring_beam(lively):
    model, processor = lively
    inputs = processor(text=["Which instrument plays?"], audio=[item(0, 14.0).wave], normalize=None)
    P = inputs["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=6,
            num_beams=3,
            num_return_sequences=3,
            length_penalty=0.0,
            early_stopping=True,
            output_scores=True,
            return_dict_in_generate=True,
        )
    scores = [_sequence_score(model, inputs, s, P) for s in out.sequences]
    torch.testing.assert_close(out.sequences_scores.float(), torch.tensor(scores), atol=1e-3, rtol=1e-3)
    assert scores[0] == max(scores)
    greedy = model.generate(**inputs, max_new_tokens=6)
    assert _sequence_score(model, inputs, out.sequences[0], P) >= _sequence_score(model, inputs, greedy[0], P) - 1e-5
    best = model.generate(**inputs, max_new_tokens=6, num_beams=3, length_penalty=0.0, early_stopping=True)
    assert torch.equal(best[0, : out.sequences.shape[1]], out.sequences[0, : best.shape[1]])


def test_beam_search_reorders_the_media_state(lively):
    """Two samples with different audio: each beam keeps attending to its own sample's audio."""
    model, processor = lively
    waves = [item(0, 4.0).wave, item(1, 25.0).wave]
    prompts = ["How many beeps?", "Which instrument plays?"]
    inputs = processor(text=prompts, audio=waves, normalize=None)
    together = model.generate(**inputs, max_new_tokens=5, num_beams=3)
    for i in range(2):
        alone = model.generate(
            **processor(text=prompts[i : i + 1], audio=waves[i : i + 1], normalize=None), max_new_tokens=5, num_beams=3
        )
        new_t, new_a = together[i, inputs["input_ids"].shape[1] :], alone[0, alone.shape[1] - 5 :]
        n = min(len(new_t), len(new_a))
        assert torch.equal(new_t[:n], new_a[:n]), i


def test_batch_of_different_audio_lengths_equals_one_by_one(lively):
    model, processor = lively
    waves = [item(0, 4.0).wave, item(1, 25.0).wave, item(2, 70.0).wave]
    prompts = ["How many beeps?", "Which instrument plays the note?", "What happened right after the siren?"]
    inputs = processor(text=prompts, audio=waves, normalize=None, max_windows=7)
    assert inputs["audio_windows"].shape[1] == 7 and inputs["audio_window_mask"].sum(1).tolist() == [1, 3, 7]
    batch = model.generate(**inputs, max_new_tokens=6)
    batch_new = batch[:, inputs["input_ids"].shape[1] :]
    for i in range(3):
        one = processor(text=prompts[i : i + 1], audio=waves[i : i + 1], normalize=None, max_windows=7)
        alone = model.generate(**one, max_new_tokens=6)[0, one["input_ids"].shape[1] :]
        assert batch_new[i, : len(alone)].tolist() == alone.tolist(), i


def test_sampling_with_a_seed_is_reproducible(lively):
    model, processor = lively
    inputs = processor(text=["Count"], audio=[item(0, 3.0).wave])
    kw = dict(max_new_tokens=6, do_sample=True, temperature=1.3, top_k=20, top_p=0.9)
    torch.manual_seed(11)
    a = model.generate(**inputs, **kw)
    torch.manual_seed(11)
    b = model.generate(**inputs, **kw)
    assert torch.equal(a, b)
    assert (a[:, inputs["input_ids"].shape[1] :] != model.config.token_ids["audio"]).all()


def test_streamer_yields_the_same_text(lively):
    from transformers import TextIteratorStreamer

    model, processor = lively
    inputs = processor(text=["Which instrument plays?"], audio=[item(0, 5.0).wave])
    plain = processor.batch_decode(model.generate(**inputs, max_new_tokens=8)[:, inputs["input_ids"].shape[1] :])[0]
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    thread = threading.Thread(target=model.generate, kwargs=dict(**inputs, max_new_tokens=8, streamer=streamer))
    thread.start()
    streamed = "".join(streamer)
    thread.join()
    assert streamed == plain


def test_stop_strings_and_repetition_penalty(lively):
    model, processor = lively
    inputs = processor(text=["Which instrument plays?"], audio=[item(0, 5.0).wave])
    P = inputs["input_ids"].shape[1]
    full = model.generate(**inputs, max_new_tokens=10)[0, P:]
    text = processor.tokenizer.decode(full[2:3])
    stopped = model.generate(**inputs, max_new_tokens=10, stop_strings=[text], tokenizer=processor.tokenizer)[0, P:]
    assert len(stopped) <= 3 and torch.equal(stopped, full[: len(stopped)])
    penalised = model.generate(**inputs, max_new_tokens=10, repetition_penalty=5.0)[0, P:]
    assert len(set(penalised.tolist())) >= len(set(full.tolist()))


def test_generation_config_defaults(make_model):
    model = make_model()
    g, t = model.generation_config, model.config.token_ids
    assert sorted(g.eos_token_id) == sorted({t["eoc"], t["eos"]}) and g.pad_token_id == t["pad"]
    assert g.suppress_tokens == [t["audio"]] and g.max_new_tokens == 64 and not g.do_sample

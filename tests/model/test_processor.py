"""AudioFlamingo2Processor: the official level normalisation, files by path, windows, prompt and
training formats, chat template, decoding, building from a config, AutoProcessor round trip."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from af2.model import AudioFlamingo2Config, AudioFlamingo2FeatureExtractor, AudioFlamingo2Processor
from af2.text.sample import IGNORE_INDEX


def _official_by_hand(x: np.ndarray) -> np.ndarray:
    """The release's front end written out independently: x / max|x|, then int16 and back."""
    x = x.astype(np.float32)
    m = np.abs(x).max()
    if m > 0:
        x = x / m
    as_int16 = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    return (as_int16 / 32767.0).astype(np.float32)


@pytest.fixture(scope="module")
def processor(tokenizer):
    return AudioFlamingo2Processor.from_config(AudioFlamingo2Config.preset("tiny"), tokenizer=tokenizer)


def _tone(rate: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * (440 + 110 * c) * t) for c in range(channels)], axis=1)
    return x.astype(np.float32)  # (T, channels), peak 0.3


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("flac", "PCM_16"), ("mp3", None)])
@pytest.mark.parametrize("rate", [8000, 16000, 44100])
@pytest.mark.parametrize("channels", [1, 2])
def test_official_normalisation_matches_numpy(tmp_path, fmt, subtype, rate, channels):
    path = tmp_path / f"a.{fmt}"
    if fmt.upper() not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    sf.write(path, _tone(rate, 1.5, channels), rate, subtype=subtype, format=fmt.upper())
    fe = AudioFlamingo2FeatureExtractor()
    got = fe.prepare(path).numpy()
    decoded, sr = sf.read(path, dtype="float32", always_2d=True)
    mono = decoded.mean(axis=1)
    if sr != 16000:
        mono = soxr.resample(mono, sr, 16000, quality="HQ")
    want = _official_by_hand(mono)
    n = min(len(got), len(want))
    assert abs(len(got) - len(want)) <= 2
    # af2 decodes and resamples in streaming blocks, the reference in one call: lossless files at
    # 16 kHz agree exactly, the others up to an int16 step or two.
    tol = 0.0 if sr == 16000 and fmt != "mp3" else 2.5 / 32767
    np.testing.assert_allclose(got[:n], want[:n], rtol=0, atol=tol)
    assert np.abs(got).max() == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(got * 32767, np.round(got * 32767), atol=1e-3)  # on the int16 grid
    level = fe.prepare(path, normalize=None).numpy()  # switched off: as read
    assert np.abs(level).max() == pytest.approx(0.3, abs=0.05)  # (mp3 overshoots a little)


def test_silence_is_not_divided_by_zero():
    fe = AudioFlamingo2FeatureExtractor()
    out = fe(np.zeros(16000 * 3, dtype=np.float32))
    assert torch.isfinite(out["audio_windows"]).all() and not out["audio_windows"].any()


def test_arrays_resampling_channels_and_bad_input():
    fe = AudioFlamingo2FeatureExtractor()
    stereo = np.stack([np.full(8000, 0.5), np.full(8000, -0.1)]).astype(np.float32)  # (channels, T)
    wave = fe.prepare(stereo, sampling_rate=8000, normalize=None)
    assert wave.shape[0] == pytest.approx(16000, abs=2)
    assert float(wave[4000:12000].mean()) == pytest.approx(0.2, abs=1e-3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fe.prepare(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(T,\) or \(channels, T\)"):
        fe.prepare(np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="normalize"):
        AudioFlamingo2FeatureExtractor(normalize="loud")


def test_windows_mask_and_truncated_flags():
    fe = AudioFlamingo2FeatureExtractor(max_windows=3)
    out = fe([torch.randn(16000 * 4), torch.randn(16000 * 45)])
    assert out["audio_windows"].shape == (2, 3, 160000)
    assert out["audio_window_mask"].tolist() == [[True, False, False], [True, True, True]]
    assert out["truncated"].tolist() == [False, True]
    assert fe([torch.randn(16000 * 45)], max_windows=5)["audio_windows"].shape == (1, 5, 160000)


def test_prompt_format_and_official_lower_casing(processor, tokenizer):
    out = processor(text=["How Many BEEPS?", "Which one?"], audio=[torch.randn(16000), torch.randn(32000)])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert not mask[1].all() and mask[1, -1]  # left-padded for generate
    first = tokenizer.decode(ids[0][mask[0]])
    assert first == "<audio>How Many BEEPS?<SEP>"
    assert {"audio_windows", "audio_window_mask", "truncated"} <= set(out)
    official = processor(text="How Many BEEPS?", audio=torch.randn(16000), official_format=True)
    assert tokenizer.decode(official["input_ids"][0]) == "<audio>how many beeps?<SEP>"
    text_only = processor(text="Say hi.", audio_token=False)
    assert tokenizer.decode(text_only["input_ids"][0]) == "Say hi.<SEP>"
    with pytest.raises(ValueError, match="2 prompts for 1 audio"):
        processor(text=["a", "b"], audio=[torch.randn(16000)])


def test_training_format_supervises_the_answer(processor, tokenizer):
    out = processor(text=["How many beeps?", "Which?"], answers=["3 beeps", "piano"])
    labels = out["labels"]
    assert out["attention_mask"][1, 0] and not out["attention_mask"][1].all()  # right-padded
    first = tokenizer.decode(out["input_ids"][0][out["attention_mask"][0]])
    assert first == f"<audio>How many beeps?<SEP>3 beeps<|endofchunk|>{tokenizer.eos_token}"
    supervised = labels[0][labels[0] != IGNORE_INDEX]
    assert tokenizer.decode(supervised, skip_special_tokens=True) == "3 beeps"


def test_chat_template(processor, tokenizer):
    conv = [{"role": "user", "content": [{"type": "audio", "path": "x.wav"}, {"type": "text", "text": "What Is It?"}]}]
    assert processor.apply_chat_template(conv) == "<audio>What Is It?<SEP>"
    assert processor.apply_chat_template(conv, official_format=True) == "<audio>what is it?<SEP>"
    train = conv + [{"role": "assistant", "content": "a dog"}]
    assert processor.apply_chat_template(train) == f"<audio>What Is It?<SEP>a dog<|endofchunk|>{tokenizer.eos_token}"
    rendered = processor(text=[processor.apply_chat_template(conv)], audio=[torch.randn(16000)])
    direct = processor(text=["What Is It?"], audio=[torch.randn(16000)])
    assert torch.equal(rendered["input_ids"], direct["input_ids"])  # same tokens either way
    assert processor.apply_chat_template([conv, conv]) == ["<audio>What Is It?<SEP>"] * 2


def test_batch_decode_drops_special_tokens(processor, tokenizer):
    ids = processor(text=["How many?"], answers=["3"])["input_ids"]
    assert processor.batch_decode(ids) == ["How many?3"]
    assert processor.decode(ids[0]) == "How many?3"


def test_from_config_and_auto_round_trip(tmp_path, tokenizer):
    from transformers import AutoProcessor

    import af2.model  # noqa: F401  (registers the Auto classes)

    config = AudioFlamingo2Config.preset("tiny", max_windows=5, official_format=True)
    proc = AudioFlamingo2Processor.from_config(config)  # the config's own tokenizer ("tiny")
    assert proc.feature_extractor.max_windows == 5 and proc.official_format
    assert proc.feature_extractor.normalize is None  # the tiny preset is trained as read
    assert (
        AudioFlamingo2Processor.from_config(
            AudioFlamingo2Config.preset("af2-3b"), tokenizer=tokenizer
        ).feature_extractor.normalize
        == "official"
    )
    proc.save_pretrained(tmp_path)
    config.save_pretrained(tmp_path)
    again = AutoProcessor.from_pretrained(tmp_path, local_files_only=True)
    assert type(again) is AudioFlamingo2Processor and type(again.feature_extractor) is AudioFlamingo2FeatureExtractor
    assert again.official_format and again.feature_extractor.max_windows == 5
    wave = torch.randn(16000 * 12)
    a, b = proc(text="Hi?", audio=wave), again(text="Hi?", audio=wave)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="names no tokenizer"):
        AudioFlamingo2Processor.from_config(AudioFlamingo2Config.preset("af2-3b"))

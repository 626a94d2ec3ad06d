"""AudioFlamingo2Config: named configs, sub-configs, strict keys and types, JSON round trip, the
AF2Config view, and the Auto classes that af2.model registers."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import af2.model  # noqa: F401  (registers the Auto classes)
from af2.model import AF2Config, AudioFlamingo2, AudioFlamingo2Config


@pytest.mark.parametrize("name", ["tiny", "af2-3b"])
def test_presets_describe_the_same_model_as_af2config(name):
    cfg = AudioFlamingo2Config.preset(name)
    assert cfg.model_type == "audioflamingo2" and cfg.preset_name == name
    assert type(cfg.audio_config).__name__ == "ClapAudioConfig" and type(cfg.text_config).__name__ == "Qwen2Config"
    assert type(cfg.audio_transformer_config).__name__ == "AudioFlamingo2AudioTransformerConfig"
    ref, view = AF2Config.preset(name), cfg.to_af2_config()
    for f in (
        "mel",
        "audio_transformer",
        "xattn",
        "token_ids",
        "max_windows",
        "stage_max_windows",
        "fused",
        "tokenizer",
        "audio_normalization",
        "official_format",
    ):
        assert getattr(view, f) == getattr(ref, f), f
    assert (view.audio_dim, view.tokens_per_window) == (ref.audio_dim, ref.tokens_per_window)
    from transformers import Qwen2Config

    assert Qwen2Config(**view.llm).to_dict() == Qwen2Config(**ref.llm).to_dict()


def test_af2_3b_defaults_are_the_released_model():
    cfg = AudioFlamingo2Config.preset("af2-3b")
    assert cfg.token_ids == dict(audio=151665, eoc=151666, sep=151668, pad=151643, eos=151643)
    assert cfg.audio_normalization == "official" and cfg.official_format
    assert (cfg.text_config.hidden_size, cfg.text_config.num_hidden_layers, cfg.audio_config.hidden_size) == (
        2048,
        36,
        2048,
    )
    assert cfg.audio_transformer_config.rope_base == 4096.0 and cfg.max_windows_for("sft") == 9
    tiny = AudioFlamingo2Config.preset("tiny")
    assert tiny.audio_normalization is None and not tiny.official_format  # trained by af2 as read


def test_json_round_trip(tmp_path):
    cfg = AudioFlamingo2Config.preset("tiny", max_windows=4, use_fused_ops=False)
    cfg.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "audioflamingo2" and saved["text_config"]["model_type"] == "qwen2"
    again = AudioFlamingo2Config.from_pretrained(tmp_path)
    assert again.to_dict() == cfg.to_dict()
    assert again.to_af2_config() == cfg.to_af2_config()


def test_unknown_keys_and_bad_types_raise():
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    with pytest.raises(ValueError, match=r"unknown keys \['bogus'\]"):
        AudioFlamingo2Config(bogus=1)
    with pytest.raises(ValueError, match=r"AudioFlamingo2AudioTransformerConfig: unknown keys \['layer'\]"):
        AudioFlamingo2Config(audio_transformer_config={"layer": 2})
    with pytest.raises(StrictDataclassFieldValidationError, match="max_windows"):
        AudioFlamingo2Config(max_windows="30")
    with pytest.raises(StrictDataclassFieldValidationError, match="layers"):
        AudioFlamingo2Config.preset("tiny", audio_transformer_config={"layers": "3"})
    with pytest.raises(StrictDataclassFieldValidationError, match="use_fused_ops"):
        AudioFlamingo2Config.preset("tiny").use_fused_ops = "yes"
    with pytest.raises(ValueError, match="audio_normalization"):
        AudioFlamingo2Config(audio_normalization="loud")
    with pytest.raises(ValueError, match="num_mel_bins"):
        AudioFlamingo2Config(n_mels=80)
    with pytest.raises(ValueError, match="unknown preset"):
        AudioFlamingo2Config.preset("af2-7b")
    with pytest.raises(ValueError, match="model_type"):
        AudioFlamingo2Config(audio_transformer_config={"model_type": "bert"})


def test_af2config_and_hf_config_build_the_same_model(tokenizer):
    torch.manual_seed(1)
    a = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tokenizer)
    torch.manual_seed(1)
    b = AudioFlamingo2(AudioFlamingo2Config.preset("tiny"), tokenizer=tokenizer)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.config.to_dict() == b.config.to_dict()


def test_use_fused_ops_switch(tokenizer):
    model = AudioFlamingo2(AudioFlamingo2Config.preset("tiny", use_fused_ops=False), tokenizer=tokenizer)
    assert not model.audio_transformer.fused and not any(b.fused for b in model.xattn.values())
    model.use_fused_ops(True)
    assert model.config.use_fused_ops and model.audio_transformer.fused and all(b.fused for b in model.xattn.values())


def test_auto_classes_are_registered(tokenizer):
    from transformers import (
        AutoConfig,
        AutoFeatureExtractor,
        AutoModel,
        AutoModelForPreTraining,
        AutoModelForSeq2SeqLM,
        AutoProcessor,
    )
    from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    cfg = AutoConfig.for_model("audioflamingo2")
    assert type(cfg) is AudioFlamingo2Config
    for auto in (AutoModel, AutoModelForSeq2SeqLM, AutoModelForPreTraining):
        assert auto._model_mapping[AudioFlamingo2Config] is AudioFlamingo2
    assert FEATURE_EXTRACTOR_MAPPING[AudioFlamingo2Config].__name__ == "AudioFlamingo2FeatureExtractor"
    assert PROCESSOR_MAPPING[AudioFlamingo2Config].__name__ == "AudioFlamingo2Processor"
    assert AutoFeatureExtractor and AutoProcessor
    model = AutoModel.from_config(AudioFlamingo2Config.preset("tiny"))
    assert type(model) is AudioFlamingo2 and model.tokenizer is not None  # tokenizer="tiny" resolves
    assert dataclasses.is_dataclass(model.config.to_af2_config())

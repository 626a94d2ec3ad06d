"""AF2Config: presets, JSON round trip, curriculum window limits, derived sizes."""

from __future__ import annotations

import pytest

from af2.model import STAGE_MAX_WINDOWS, AF2Config


@pytest.mark.parametrize("name", ["tiny", "af2-3b"])
def test_json_round_trip(name, tmp_path):
    cfg = AF2Config.preset(name)
    assert AF2Config.from_json(cfg.to_json()) == cfg
    cfg.to_json(tmp_path / "c.json")
    assert AF2Config.from_json(tmp_path / "c.json") == cfg


def test_af2_3b_sizes():
    cfg = AF2Config.preset("af2-3b")
    a, at, x, llm = cfg.clap.audio, cfg.audio_transformer, cfg.xattn, cfg.llm
    assert (a["patch_embeds_hidden_size"], a["depths"], a["num_attention_heads"], a["window_size"], a["spec_size"]) == (
        256,
        [2, 2, 12, 2],
        [4, 8, 16, 32],
        8,
        256,
    )
    assert (cfg.audio_dim, cfg.tokens_per_window) == (2048, 64)
    assert (at.layers, at.heads, at.ffn_dim, at.rotary_dim, at.rope_base) == (3, 8, 2048, 128, 4096.0)
    assert (x.every_n_layers, x.heads, x.dim_head, x.ff_mult) == (1, 8, 64, 4)
    assert (
        llm["hidden_size"],
        llm["num_hidden_layers"],
        llm["num_attention_heads"],
        llm["num_key_value_heads"],
        llm["vocab_size"],
        llm["tie_word_embeddings"],
    ) == (2048, 36, 16, 2, 151669, True)
    assert (cfg.mel.sample_rate, cfg.mel.n_fft, cfg.mel.hop_length, cfg.mel.n_mels, cfg.mel.f_min, cfg.mel.f_max) == (
        16000,
        1024,
        160,
        64,
        50.0,
        8000.0,
    )
    assert cfg.clap.text["d_model"] == 1024 and cfg.clap.joint_dim == 512


def test_tiny_keeps_af2_token_grid():
    assert AF2Config.preset("tiny").tokens_per_window == 64


def test_stage_windows():
    cfg = AF2Config.preset("tiny")
    assert STAGE_MAX_WINDOWS == {"pretrain": 3, "sft": 9, "long": 30}
    assert [cfg.max_windows_for(s) for s in ("pretrain", "sft", "long")] == [3, 9, 30]
    assert cfg.max_windows_for() == cfg.max_windows == 30
    with pytest.raises(ValueError, match="unknown stage"):
        cfg.max_windows_for("stage4")


def test_bad_input():
    with pytest.raises(ValueError, match="unknown preset"):
        AF2Config.preset("af2-7b")
    with pytest.raises(ValueError, match="unknown fields"):
        AF2Config.from_dict({"name": "x", "bogus": 1})

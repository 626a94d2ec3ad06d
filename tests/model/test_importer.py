"""Importer of the public AF2 checkpoint layout: a tiny state_dict with the official names and
shapes, aliases, shards, and the official name list itself (tests/data/af2_official_params.json:
names and shapes dumped from the official code on the meta device; its ``notes`` say how)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from af2.model import AF2Config, AudioFlamingo2
from af2.model.importer import (
    convert_official_state_dict,
    htsat_to_hf,
    load_official_checkpoint,
    read_official_checkpoint,
    to_official_state_dict,
)

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "af2_official_params.json"


def _reference():
    """The vendored official name/shape list (``AF2_REFERENCE_JSON`` points to another copy)."""
    return json.loads(Path(os.environ.get("AF2_REFERENCE_JSON") or REFERENCE).read_text())


def _official_tiny(model):
    """The tiny model's weights under the official names and shapes (fused qkv, inv_freq)."""
    at = model.config.audio_transformer
    return to_official_state_dict(model.state_dict(), rope_base=at.rope_base, rotary_dim=at.rotary_dim)


def _assert_same(a, b, skip=("clap.text", "clap.audio_projection", "clap.text_projection", "clap.logit_scale")):
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        if not k.startswith(skip):
            assert torch.equal(sa[k], sb[k]), k


def test_official_names_and_shapes_at_tiny_size(make_model):
    src = make_model(gates=0.4, seed=1)
    off = _official_tiny(src)
    q = src.clap.audio.audio_encoder.layers[0].blocks[0].attention.self.query.weight
    fused = off["clap.nvclap.layers.0.blocks.0.attn.qkv.weight"]
    assert fused.shape == (3 * q.shape[0], q.shape[1]) and torch.equal(fused[: q.shape[0]], q)
    assert torch.equal(
        off["audio_transformer_clap.layer_stack.1.slf_attn.w_ks.weight"],
        src.audio_transformer.layers[1].attn.k_proj.weight,
    )
    assert torch.equal(
        off["lang_encoder.model.layers.1.gated_cross_attn_layer_sound.attn_gate"], src.xattn["1"].attn_gate
    )
    assert torch.equal(
        off["lang_encoder.model.layers.0.decoder_layer.mlp.up_proj.weight"], src.llm.model.layers[0].mlp.up_proj.weight
    )
    assert off["clap.nvclap.bn0.running_var"].shape == (64,)
    dst = make_model(seed=2)
    report = _load_dict(dst, off)
    assert not report.unknown
    assert {k.split(".")[1] for k in report.missing} <= {"text", "audio_projection", "text_projection", "logit_scale"}
    _assert_same(src, dst)


def _load_dict(model, sd):
    at = model.config.audio_transformer
    converted, report = convert_official_state_dict(sd, rope_base=at.rope_base, rotary_dim=at.rotary_dim)
    result = model.load_state_dict(converted, strict=False)
    report.missing = result.missing_keys
    report.unknown += result.unexpected_keys
    return report


def test_alias_spellings_and_sharded_release(make_model, tmp_path):
    src = make_model(gates=0.4, seed=1)
    off = _official_tiny(src)
    aliased = {}
    for k, v in off.items():  # the spellings of the training code and of epoch_16.pt
        k = k.replace("lang_encoder.model.layers.", "lang_encoder.old_decoder_blocks.") if ".decoder_layer." in k else k
        k = k.replace(".decoder_layer.", ".")
        if ".gated_cross_attn_layer_sound." in k:
            i = k.split(".")[3]
            k = k.replace(
                f"lang_encoder.model.layers.{i}.gated_cross_attn_layer_sound.",
                f"lang_encoder.gated_cross_attn_layers_sound.{i}.",
            )
        k = k.replace("clap.nvclap.", "clap.afclap.")
        aliased["module." + k] = v.clone()
    shards = {"part_a": {}, "part_b": {}}
    for n, (k, v) in enumerate(aliased.items()):
        shards["part_a" if n % 2 else "part_b"][k] = v.contiguous()
    (tmp_path / "safe_ckpt").mkdir()
    for name, sd in shards.items():
        save_file(sd, str(tmp_path / "safe_ckpt" / f"{name}.safetensors"))
    (tmp_path / "safe_ckpt" / "metadata.json").write_text(json.dumps({"part_a": {}, "part_b": {}}))
    assert read_official_checkpoint(tmp_path).keys() == aliased.keys()
    dst = make_model(seed=2)
    report = load_official_checkpoint(dst, tmp_path)
    assert not report.unknown
    _assert_same(src, dst)


def test_pt_files_load_weights_only(make_model, tmp_path):
    src = make_model(seed=1)
    htsat = {
        "module.audio_branch." + k[len("clap.nvclap.") :]: v
        for k, v in _official_tiny(src).items()
        if k.startswith("clap.nvclap.")
    }
    torch.save({"epoch": 16, "state_dict": htsat}, tmp_path / "epoch_16.pt")
    dst = make_model(seed=2)
    load_official_checkpoint(dst, tmp_path / "epoch_16.pt")
    _assert_same(src.clap.audio, dst.clap.audio, skip=())


def test_dropped_names_and_bad_rope():
    assert htsat_to_hf("spectrogram_extractor.stft.conv_real.weight") == []
    assert htsat_to_hf("layers.2.blocks.1.attn_mask") == []
    assert htsat_to_hf("tscam_conv.weight") == [] and htsat_to_hf("head.bias") == []
    assert htsat_to_hf("layers.3.blocks.1.mlp.fc2.bias") == ["layers.3.blocks.1.output.dense.bias"]
    assert htsat_to_hf("layers.0.blocks.0.attn.proj.weight") == ["layers.0.blocks.0.attention.output.dense.weight"]
    wrong = {"audio_transformer_clap.position_enc.inv_freq": 1.0 / 10000 ** (torch.arange(0, 128, 2) / 128)}
    with pytest.raises(ValueError, match="rope_base"):
        convert_official_state_dict(wrong)


def test_htsat_rules_equal_transformers_conversion():
    ref = _reference()
    mapped = ref["afclap_to_hf_clap_audio"]["mapped"]
    for official, hf in mapped.items():
        assert ["audio_encoder." + n for n in htsat_to_hf(official)] == hf, official
    for official in ref["afclap_to_hf_clap_audio"]["official_only_no_hf_counterpart"]:
        assert htsat_to_hf(official) == []


def test_af2_3b_matches_the_official_layout_on_meta():
    ref = _reference()
    official = ref["af2_flamingo"]
    with torch.device("meta"):
        model = AudioFlamingo2(AF2Config.preset("af2-3b"))
    ours = model.state_dict()
    exported = to_official_state_dict(ours)
    canonical = {
        k: v
        for k, v in official.items()
        if not k.startswith(("lang_encoder.old_decoder_blocks.", "lang_encoder.gated_cross_attn_layers_sound."))
    }
    dropped = {k for k in canonical if k.startswith("clap.nvclap.") and not htsat_to_hf(k[len("clap.nvclap.") :])}
    assert len(dropped) == 15
    assert set(exported) == set(canonical) - dropped
    assert all(list(exported[k].shape) == canonical[k] for k in exported)
    # Importing every official name (aliases included) sets every one of ours but AF-CLAP's
    # contrastive-only parts, with our shapes.
    converted, report = convert_official_state_dict({k: torch.empty(v, device="meta") for k, v in official.items()})
    assert not report.unknown and not set(converted) - set(ours)
    assert {k.split(".")[1] for k in set(ours) - set(converted)} == {
        "text",
        "audio_projection",
        "text_projection",
        "logit_scale",
    }
    assert all(converted[k].shape == ours[k].shape for k in converted)

"""save_pretrained / from_pretrained: exact round trip, safetensors + JSON only, nothing unpickled."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from af2.model import AF2Config, AudioFlamingo2


def test_round_trip_is_exact(make_model, batch, tmp_path):
    model = make_model(gates=0.3)
    with torch.no_grad():                        # make every parameter differ from a fresh init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.relative_to(tmp_path / "ckpt").as_posix() for p in (tmp_path / "ckpt").rglob("*") if p.is_file())
    assert "config.json" in files and "model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    loaded = AudioFlamingo2.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == dataclasses.replace(model.config, tokenizer=None)   # it came from the directory
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert loaded.llm.lm_head.weight is loaded.llm.model.embed_tokens.weight        # still tied
    assert loaded.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    with torch.no_grad():
        assert torch.equal(model(**AudioFlamingo2.batch_inputs(batch)).logits,
                           loaded(**AudioFlamingo2.batch_inputs(batch)).logits)


def test_saved_config_is_self_contained(make_model, tmp_path):
    model = make_model()
    model.config.llm_path = "/somewhere/qwen"            # weights are in the file: paths are cleared
    model.save_pretrained(tmp_path)
    cfg = AF2Config.from_json(tmp_path / "config.json")
    assert cfg.llm_path is None and cfg.tokenizer is None and cfg.tokenizer_path is None
    assert cfg.token_ids == model.config.token_ids


def _perturbed(model):
    with torch.no_grad():                        # make every parameter differ from a fresh init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def test_bf16_round_trip_keeps_bf16_and_is_exact(make_model, batch, tmp_path):
    model = _perturbed(make_model(gates=0.3)).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    loaded = AudioFlamingo2.from_pretrained(tmp_path).eval()
    a, b = dict(model.named_buffers()), dict(loaded.named_buffers())       # non-persistent ones too
    a.update(model.state_dict())
    b.update(loaded.state_dict())
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert loaded.llm.model.rotary_emb.inv_freq.dtype == torch.bfloat16     # rebuilt, then cast as saved
    assert loaded.llm.lm_head.weight is loaded.llm.model.embed_tokens.weight
    with torch.no_grad():
        assert torch.equal(model(**AudioFlamingo2.batch_inputs(batch)).logits,
                           loaded(**AudioFlamingo2.batch_inputs(batch)).logits)


def test_dtype_casts_like_model_to(make_model, tmp_path):
    model = _perturbed(make_model(gates=0.3))
    model.save_pretrained(tmp_path)
    loaded = AudioFlamingo2.from_pretrained(tmp_path, dtype=torch.bfloat16)
    want = model.to(torch.bfloat16)
    a, b = dict(want.named_buffers()), dict(loaded.named_buffers())
    a.update(want.state_dict())
    b.update(loaded.state_dict())
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert loaded.clap.audio.audio_encoder.patch_embed.fusion_model.local_att[1].num_batches_tracked.dtype == torch.int64  # not floating: kept
    with pytest.raises(ValueError, match="floating"):
        AudioFlamingo2.from_pretrained(tmp_path, dtype=torch.int32)


class _Recorder(AudioFlamingo2):
    """Records where its parameters were when ``__init__`` finished."""

    built = []

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        _Recorder.built.append({p.device.type for p in self.parameters()})


def test_loading_builds_on_meta_without_a_random_model(make_model, tmp_path):
    make_model().save_pretrained(tmp_path)
    _Recorder.built.clear()
    loaded = _Recorder.from_pretrained(tmp_path)
    assert _Recorder.built == [{"meta"}]                  # one build, every parameter on meta
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}


def test_not_strict_records_what_is_missing(make_model, tmp_path):
    from safetensors.torch import load_file, save_file

    model = make_model()
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["audio_transformer.norm.weight"]
    state["extra.weight"] = torch.zeros(2)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="lacks 1 tensors"):
        AudioFlamingo2.from_pretrained(tmp_path)
    loaded = AudioFlamingo2.from_pretrained(tmp_path, strict=False)
    assert loaded.load_warnings == {"missing": ["audio_transformer.norm.weight"], "unexpected": ["extra.weight"]}
    assert loaded.audio_transformer.norm.weight.device.type == "cpu"      # initialised, not left on meta
    assert torch.equal(loaded.audio_transformer.norm.bias, model.audio_transformer.norm.bias)  # the rest loaded
    assert loaded.llm.lm_head.weight is loaded.llm.model.embed_tokens.weight


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an af2 checkpoint"):
        AudioFlamingo2.from_pretrained(tmp_path)



def test_a_0dim_logit_scale_of_an_older_checkpoint_loads_as_shape_1(make_model, tmp_path):
    from safetensors.torch import load_file, save_file

    model = make_model()
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert state["clap.logit_scale"].shape == (1,)
    state["clap.logit_scale"] = torch.tensor(2.5)            # as written when the scale was 0-dim
    save_file(state, tmp_path / "model.safetensors")
    loaded = AudioFlamingo2.from_pretrained(tmp_path)
    assert loaded.clap.logit_scale.shape == (1,) and loaded.clap.logit_scale.item() == 2.5
    assert isinstance(loaded.clap.logit_scale, torch.nn.Parameter) and loaded.clap.logit_scale.requires_grad

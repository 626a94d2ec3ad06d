"""save_pretrained / from_pretrained: transformers' format (sharded safetensors, config.json with
model_type, generation_config.json, processor, model card), exact round trips, meta loading, and
af2's older single-file format loading transparently. Nothing is unpickled."""

from __future__ import annotations

import json

import pytest
import torch

from af2.model import AudioFlamingo2
from af2.model.checkpoint import save_pretrained as save_older_format

M = AudioFlamingo2.batch_inputs


def _perturbed(model):
    with torch.no_grad():  # make every parameter differ from a fresh init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def _same_state(a, b, dtypes: bool = True, nonpersistent: bool = True) -> None:
    sa, sb = (dict(a.named_buffers()), dict(b.named_buffers())) if nonpersistent else ({}, {})
    sa.update(a.state_dict())
    sb.update(b.state_dict())
    assert sa.keys() == sb.keys()
    for k in sa:
        assert (not dtypes or sa[k].dtype == sb[k].dtype) and torch.equal(sa[k], sb[k]), k


def test_round_trip_is_exact(make_model, batch, tmp_path):
    model = _perturbed(make_model(gates=0.3))
    model.save_pretrained(tmp_path / "ckpt")
    d = tmp_path / "ckpt"
    files = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "README.md",
        "tokenizer.json",
        "processor_config.json",
    ):
        assert name in files, files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    saved = json.loads((d / "config.json").read_text())
    assert saved["model_type"] == "audioflamingo2" and saved["architectures"] == [
        "AudioFlamingo2ForConditionalGeneration"
    ]
    generation = json.loads((d / "generation_config.json").read_text())
    t = model.config.token_ids
    assert sorted(generation["eos_token_id"]) == sorted({t["eoc"], t["eos"]}) and generation["suppress_tokens"] == [
        t["audio"]
    ]
    loaded = AudioFlamingo2.from_pretrained(d).eval()
    assert loaded.config.to_af2_config() == model.config.to_af2_config().__class__(
        **{**model.config.to_af2_config().__dict__, "tokenizer": None}
    )  # it came from the directory
    _same_state(model, loaded)
    assert loaded.llm.lm_head.weight is loaded.llm.model.embed_tokens.weight  # still tied
    assert loaded.clap.text.encoder.embed_tokens.weight is loaded.clap.text.shared.weight
    assert loaded.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    with torch.no_grad():
        assert torch.equal(model(**M(batch)).logits, loaded(**M(batch)).logits)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sharded_auto_round_trip(make_model, batch, tmp_path, dtype):
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

    model = _perturbed(make_model(gates=0.3)).to(dtype)
    model.save_pretrained(tmp_path, max_shard_size="100KB")
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 2 and (tmp_path / "model.safetensors.index.json").is_file()
    assert type(AutoConfig.from_pretrained(tmp_path)).__name__ == "AudioFlamingo2Config"
    for auto in (AutoModel, AutoModelForSeq2SeqLM):
        loaded = auto.from_pretrained(tmp_path, local_files_only=True).eval()
        assert type(loaded) is AudioFlamingo2
        assert {p.dtype for p in loaded.parameters()} == {dtype}
        # transformers keeps the LLM's RoPE inv_freq (rebuilt, not stored) in float32 where
        # model.to(bfloat16) rounds it: compare what is stored, and the logits in float32.
        _same_state(model, loaded, nonpersistent=dtype == torch.float32)
    if dtype == torch.float32:
        with torch.no_grad():
            assert torch.equal(model(**M(batch)).logits, loaded(**M(batch)).logits)


def test_saved_config_is_self_contained(make_model, tmp_path):
    model = make_model()
    model.config.llm_path = "/somewhere/qwen"  # weights are in the file: paths are cleared
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["llm_path"] is None and saved["tokenizer"] is None and saved["tokenizer_path"] is None
    assert model.config.llm_path == "/somewhere/qwen"  # the live config is left as it was
    assert {k: saved[f"{k}_token_id"] for k in ("audio", "eoc", "sep", "pad", "eos")} == model.config.token_ids


def test_dtype_casts_like_model_to(make_model, tmp_path):
    model = _perturbed(make_model(gates=0.3))
    model.save_pretrained(tmp_path)
    for kw in ({"dtype": torch.bfloat16}, {"torch_dtype": torch.bfloat16}):
        loaded = AudioFlamingo2.from_pretrained(tmp_path, **kw)
        assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
        want = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in model.state_dict().items()}
        got = loaded.state_dict()
        for k in want:
            assert want[k].dtype == got[k].dtype and torch.equal(want[k], got[k]), k


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
    assert _Recorder.built == [{"meta"}]  # one build, every parameter on meta
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}


def test_a_missing_tensor_is_initialised(make_model, tmp_path):
    from safetensors.torch import load_file, save_file

    model = _perturbed(make_model())
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["audio_transformer.norm.weight"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = AudioFlamingo2.from_pretrained(tmp_path)
    assert torch.equal(loaded.audio_transformer.norm.weight, torch.ones(32))  # LayerNorm's own init
    assert torch.equal(loaded.audio_transformer.norm.bias, model.audio_transformer.norm.bias)  # the rest loaded
    assert loaded.llm.lm_head.weight is loaded.llm.model.embed_tokens.weight


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(OSError):
        AudioFlamingo2.from_pretrained(tmp_path)
    with pytest.raises(OSError):  # a hub id, offline by the caller's choice
        AudioFlamingo2.from_pretrained("nvidia/no-such-af2-model", local_files_only=True)


# -- the older format (config.json = AF2Config, one model.safetensors, tokenizer/) --------------------
def test_older_format_loads_exactly(make_model, batch, tmp_path):
    model = _perturbed(make_model(gates=0.3))
    save_older_format(model, tmp_path)
    assert "model_type" not in json.loads((tmp_path / "config.json").read_text())
    loaded = AudioFlamingo2.from_pretrained(tmp_path).eval()
    assert type(loaded) is AudioFlamingo2 and loaded.config.model_type == "audioflamingo2"
    _same_state(model, loaded)
    assert loaded.llm.lm_head.weight is loaded.llm.model.embed_tokens.weight
    assert loaded.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    with torch.no_grad():
        assert torch.equal(model(**M(batch)).logits, loaded(**M(batch)).logits)
    loaded.save_pretrained(tmp_path / "new")  # re-saved in transformers' format
    again = AudioFlamingo2.from_pretrained(tmp_path / "new")
    _same_state(model, again)


def test_older_format_bf16_and_dtype(make_model, tmp_path):
    model = _perturbed(make_model(gates=0.3)).to(torch.bfloat16)
    save_older_format(model, tmp_path)
    loaded = AudioFlamingo2.from_pretrained(tmp_path)
    _same_state(model, loaded)
    assert loaded.llm.model.rotary_emb.inv_freq.dtype == torch.bfloat16  # rebuilt, then cast as saved
    as_f32 = AudioFlamingo2.from_pretrained(tmp_path, dtype=torch.float32)
    assert {p.dtype for p in as_f32.parameters()} == {torch.float32}
    with pytest.raises(ValueError, match="floating"):
        AudioFlamingo2.from_pretrained(tmp_path, dtype=torch.int32)


def test_older_format_not_strict_records_what_is_missing(make_model, tmp_path):
    from safetensors.torch import load_file, save_file

    model = make_model()
    save_older_format(model, tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["audio_transformer.norm.weight"]
    state["extra.weight"] = torch.zeros(2)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="lacks 1 tensors"):
        AudioFlamingo2.from_pretrained(tmp_path)
    loaded = AudioFlamingo2.from_pretrained(tmp_path, strict=False)
    assert loaded.load_warnings == {"missing": ["audio_transformer.norm.weight"], "unexpected": ["extra.weight"]}
    assert loaded.audio_transformer.norm.weight.device.type == "cpu"  # initialised, not left on meta
    assert torch.equal(loaded.audio_transformer.norm.bias, model.audio_transformer.norm.bias)


def test_a_0dim_logit_scale_of_an_older_checkpoint_loads_as_shape_1(make_model, tmp_path):
    """(Only the older format was ever written with the 0-dim scale.)"""
    from safetensors.torch import load_file, save_file

    model = make_model()
    save_older_format(model, tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert state["clap.logit_scale"].shape == (1,)
    state["clap.logit_scale"] = torch.tensor(2.5)  # as written when the scale was 0-dim
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = AudioFlamingo2.from_pretrained(tmp_path)
    assert loaded.clap.logit_scale.shape == (1,) and loaded.clap.logit_scale.item() == 2.5
    assert isinstance(loaded.clap.logit_scale, torch.nn.Parameter) and loaded.clap.logit_scale.requires_grad

"""convert_official: a checkpoint in the official layout (random weights) -> a from_pretrained
directory with the processor and the official front end, that loads and generates."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from af2.model import AudioFlamingo2, AudioFlamingo2Config
from af2.model.convert import convert_official
from af2.model.importer import to_official_state_dict


def _write_official(model, root):
    """The release layout: safe_ckpt/metadata.json naming two shards."""
    at = model.config.audio_transformer_config
    official = to_official_state_dict(model.state_dict(), rope_base=float(at.rope_base), rotary_dim=at.rotary_dim)
    official = {k: v.contiguous().clone() for k, v in official.items()}
    names = sorted(official)
    half = len(names) // 2
    (root / "safe_ckpt").mkdir(parents=True)
    for shard, keys in (("part_0", names[:half]), ("part_1", names[half:])):
        save_file({k: official[k] for k in keys}, str(root / "safe_ckpt" / f"{shard}.safetensors"))
    (root / "safe_ckpt" / "metadata.json").write_text(json.dumps({"part_0": {}, "part_1": {}}))


def test_convert_official_loads_and_generates(make_model, tokenizer, tmp_path):
    from transformers import AutoModel, AutoProcessor

    source = make_model(gates=0.4, seed=2)
    _write_official(source, tmp_path / "release")
    report = convert_official(
        tmp_path / "release", tmp_path / "out", config=AudioFlamingo2Config.preset("tiny"), tokenizer=tokenizer
    )
    assert report.loaded and not report.unknown
    model = AutoModel.from_pretrained(tmp_path / "out", local_files_only=True).eval()
    assert type(model) is AudioFlamingo2 and model.clap.text is None  # the release has no text tower
    ours = source.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("clap.audio_projection"):  # not in the release: initialised
            assert torch.equal(value, ours[key]), key
    processor = AutoProcessor.from_pretrained(tmp_path / "out", local_files_only=True)
    assert processor.official_format and processor.feature_extractor.normalize == "official"
    inputs = processor(text=["How Many Beeps?"], audio=[0.1 * torch.randn(16000 * 3)])
    assert processor.tokenizer.decode(inputs["input_ids"][0]) == "<audio>how many beeps?<SEP>"
    out = model.generate(**inputs, max_new_tokens=4)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_convert_official_needs_a_tokenizer(make_model, tmp_path):
    with pytest.raises(ValueError, match="needs AF2's tokenizer"):
        convert_official(tmp_path, tmp_path / "out")

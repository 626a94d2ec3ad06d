"""save_pretrained / from_pretrained: exact round trip, safetensors + JSON only, nothing unpickled."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import af2.model
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


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an af2 checkpoint"):
        AudioFlamingo2.from_pretrained(tmp_path)


def test_no_unsafe_torch_load():
    root = Path(af2.model.__file__).parent
    loads = 0
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                loads += 1
                kw = {k.arg: k.value for k in node.keywords}
                assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, \
                    f"{path.name}:{node.lineno}: torch.load without weights_only=True"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("pickle", "dill") for n in names), path.name
    assert loads >= 1                      # the importer reads .pt files this way

"""``af2 convert-official``: a release in the official layout (random weights, tiny sizes) becomes a
from_pretrained directory (exit 0); bad input is one line and exit status 2, nothing written."""

from __future__ import annotations

import pytest
import torch

from tests.cli.conftest import bad_input, files_under
from tests.model.test_convert import _write_official


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from af2.model import AF2Config, AudioFlamingo2
    from af2.text.tokens import tiny_tokenizer

    torch.manual_seed(3)
    source = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    root = tmp_path_factory.mktemp("release")
    _write_official(source, root)
    return root, source


def test_convert_official_writes_a_loadable_directory(af2, release, tmp_path):
    from transformers import AutoModel

    root, source = release
    result = af2("convert-official", "--input", root / "safe_ckpt", "--output", tmp_path / "out", "--preset", "tiny")
    assert result.code == 0, result.err
    assert "converted" in result.out
    model = AutoModel.from_pretrained(tmp_path / "out", local_files_only=True)
    key = "audio_transformer.layers.0.attn.q_proj.weight"
    assert torch.equal(model.state_dict()[key], source.state_dict()[key])


def test_convert_official_bad_input_is_status_2_and_writes_nothing(af2, release, tmp_path):
    root, _ = release
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    before = files_under(tmp_path)
    for argv, words in [
        (["--input", tmp_path / "nope", "--output", tmp_path / "o"], ["--input", "no such file or directory"]),
        (["--input", root / "safe_ckpt", "--output", tmp_path / "full", "--preset", "tiny"], ["--output", "not empty"]),
        (["--input", root / "safe_ckpt", "--output", tmp_path / "o", "--preset", "huge"], ["--preset", "unknown"]),
        (["--input", root / "safe_ckpt"], ["--output"]),
    ]:
        bad_input(af2("convert-official", *argv), *words)
    assert files_under(tmp_path) == before

"""Data-dependent init of the audio transformation's input LayerNorm: per-feature standardised
outputs on the batches it saw, masked windows ignored, trainable as before, rank-consistent
inputs, a clear error without audio, and the stage option."""

from __future__ import annotations

import pytest
import torch

from af2.model.random_batch import random_lm_batch
from training.config import SCHEMA, merge
from training.norm_init import init_audio_norm_from_data
from training.stages import build_model, freeze_for_stage


def _model():
    cfg = merge(SCHEMA, {"stage": "pretrain"})
    model = build_model(cfg)
    freeze_for_stage(model, cfg)
    return model


def _norm_outputs(model, batch):
    mask = batch["audio_window_mask"]
    with torch.no_grad():
        dense = model.clap.dense_features(batch["audio_windows"], mask)[mask]
        D = dense.shape[-1]
        return model.audio_transformer.norm(dense * D**0.5).reshape(-1, D)


def test_outputs_are_standardised_per_feature_on_the_batches_seen():
    model = _model()
    batches = [random_lm_batch(model, B=2, W=2, seed=s) for s in range(3)]
    batches[1]["audio_window_mask"][0, 1] = False
    batches[1]["audio_windows"][0, 1] = 100.0  # a masked window's content must not count
    before = torch.cat([_norm_outputs(model, b) for b in batches])
    assert before.mean(0).norm() > 1.0  # the shared component the init removes
    stats = init_audio_norm_from_data(model, batches)
    after = torch.cat([_norm_outputs(model, b) for b in batches])
    assert stats["tokens"] == after.shape[0] == 11 * 64
    assert torch.allclose(after.mean(0), torch.zeros(after.shape[1]), atol=1e-4)
    assert torch.allclose(after.std(0, unbiased=False), torch.ones(after.shape[1]), atol=1e-3)
    assert stats["mean_norm"] == pytest.approx(float(before.mean(0).norm()), rel=1e-3)
    norm = model.audio_transformer.norm
    assert norm.weight.requires_grad and norm.bias.requires_grad  # still trained by the stage
    assert not model.clap.audio.training  # the frozen HTSAT's mode is kept


def test_trainable_htsat_keeps_its_mode_and_batchnorm_statistics():
    cfg = merge(SCHEMA, {"stage": "sft"})
    model = build_model(cfg)
    freeze_for_stage(model, cfg)
    model.train()
    bn = model.clap.audio.audio_encoder.batch_norm
    before = bn.running_mean.clone()
    init_audio_norm_from_data(model, [random_lm_batch(model, seed=0)])
    assert model.clap.audio.training and torch.equal(before, bn.running_mean)


def test_no_valid_window_is_an_error():
    model = _model()
    batch = random_lm_batch(model, seed=0)
    batch["audio_window_mask"][:] = False
    with pytest.raises(ValueError, match="no valid audio window"):
        init_audio_norm_from_data(model, [batch])
    with pytest.raises(ValueError, match="no valid audio window"):
        init_audio_norm_from_data(model, [])


def test_stage_option_initialises_and_reports(stage_config, tmp_path):
    import json

    from safetensors.torch import load_file

    from tests.training.conftest import run

    cfg = stage_config(
        "ninit", train={"max_steps": 12, "progress": False, "init_audio_norm_from_data": True, "feature_cache_mb": 16}
    )
    run(["-m", "training.train", "--config", str(cfg)])
    summary = json.loads((tmp_path / "ninit" / "summary.json").read_text())
    assert summary["audio_norm_init"]["tokens"] >= 64 and summary["audio_norm_init"]["gain_max"] > 1
    cache = summary["feature_cache"]
    # every window stored once; a miss is a lookup, so a clip twice in one first-epoch batch misses twice
    assert cache["windows"] > 0 and cache["misses"] >= cache["windows"]
    assert cache["hits"] > 0  # the second epoch hit the cache
    weights = load_file(str(tmp_path / "ninit" / "model" / "model.safetensors"))
    assert not torch.allclose(weights["audio_transformer.norm.weight"], torch.ones(1))

"""The frozen-encoder dense-feature cache: same features, loss and gradients as without it;
each distinct window encoded once; its byte budget; never used while the HTSAT trains."""

from __future__ import annotations

import pytest
import torch

from af2.audio.windows import KEY_BYTES, window_keys
from af2.model.random_batch import random_lm_batch
from training.config import SCHEMA, ConfigError, merge, validate
from training.feature_cache import DenseFeatureCache, encoder_is_frozen
from training.stages import StageModule, build_model, freeze_for_stage, uses_feature_cache


def _stage(stage: str, mb: float):
    cfg = merge(SCHEMA, {"stage": stage, "train": {"feature_cache_mb": mb}})
    model = build_model(cfg)
    trainable, _ = freeze_for_stage(model, cfg)
    return StageModule(model, cfg), trainable


def _counting_encoder(clap, calls: list):
    real = clap.dense_features

    def counted(windows, mask=None):
        calls.append(int(windows.shape[0] * windows.shape[1] if mask is None else mask.sum()))
        return real(windows, mask)

    clap.dense_features = counted


def test_cache_matches_encoder_and_encodes_each_window_once():
    module, _ = _stage("pretrain", 64)
    clap = module.model.clap
    g = torch.Generator().manual_seed(0)
    windows = 0.1 * torch.randn(3, 2, 160000, generator=g)
    windows[2, 0] = windows[0, 1]  # the same audio twice in one batch
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    with torch.no_grad():
        want = clap.dense_features(windows, mask)
    cache = DenseFeatureCache(2**20)
    calls = []
    _counting_encoder(clap, calls)
    got = cache(clap, windows, mask)
    assert torch.equal(got, want)  # padded window (1, 1) is zeros in both
    assert calls == [4] and cache.misses == 5 and cache.hits == 0
    again = cache(clap, windows, mask)
    assert torch.equal(again, want) and calls == [4]  # nothing recomputed
    assert cache.stats()["hits"] == 5 and cache.stats()["windows"] == 4


def test_cache_looks_up_by_the_keys_it_is_given():
    """Keys from the loader (af2.audio.windows.window_keys) give the same features without hashing
    here; the lookup goes by the keys alone (two windows given one key share features)."""
    module, _ = _stage("pretrain", 64)
    clap = module.model.clap
    windows = 0.1 * torch.randn(2, 2, 160000, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[True, True], [True, False]])
    keys = window_keys(windows, mask)
    with torch.no_grad():
        want = clap.dense_features(windows, mask)
    cache = DenseFeatureCache(2**20)
    assert torch.equal(cache(clap, windows, mask, keys), want) and cache.misses == 3
    assert torch.equal(cache(clap, windows, mask), want) and cache.hits == 3  # hashed here: the same keys
    shared = keys.clone()
    shared[1, 0] = keys[0, 0]
    fresh = DenseFeatureCache(2**20)
    got = fresh(clap, windows, mask, shared)
    assert torch.equal(got[1, 0], want[0, 0]) and fresh.misses == 3 and fresh.stats()["windows"] == 2
    with pytest.raises(
        ValueError,
        match=r"keys must be \(B, W, 16\) = \(2, 2, 16\) for windows "
        r"\(2, 2, 160000\), got \(2, 16\)",
    ):
        cache(clap, windows, mask, keys[:, 0])


def test_stages_that_use_the_cache():
    for stage, mb, used in (
        ("pretrain", 16, True),
        ("long", 16, True),
        ("pretrain", 0, False),
        ("sft", 16, False),
        ("clap", 16, False),
    ):
        cfg = merge(SCHEMA, {"stage": stage, "train": {"feature_cache_mb": mb}})
        model = build_model(cfg)
        freeze_for_stage(model, cfg)
        assert uses_feature_cache(model, cfg) is used, (stage, mb)


def test_stage_module_uses_the_batch_keys():
    module, _ = _stage("pretrain", 16)
    batch = random_lm_batch(module.model, B=2, W=1, seed=5)
    batch["audio_window_keys"] = torch.zeros(2, 1, KEY_BYTES, dtype=torch.uint8)  # both windows: one key
    module(batch)
    assert module.feature_cache.stats()["windows"] == 1 and module.feature_cache.misses == 2


def test_cache_byte_budget_stores_what_fits_and_still_answers():
    module, _ = _stage("pretrain", 64)
    clap = module.model.clap
    windows = 0.1 * torch.randn(4, 1, 160000, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(4, 1, dtype=torch.bool)
    one = 64 * clap.dense_features(windows[:1], mask[:1]).shape[-1] * 4  # 64 tokens x D fp32
    cache = DenseFeatureCache(2 * one)
    first = cache(clap, windows, mask)
    assert cache.stats()["windows"] == 2 and cache.bytes == 2 * one
    calls = []
    _counting_encoder(clap, calls)
    assert torch.equal(cache(clap, windows, mask), first)
    assert calls == [2]  # the two that did not fit are computed again


def test_cache_refuses_a_trainable_encoder():
    module, _ = _stage("sft", 64)
    assert module.feature_cache is None  # the HTSAT trains in sft: no cache even when configured
    assert not encoder_is_frozen(module.model.clap)
    with pytest.raises(RuntimeError, match="trainable or in training mode"):
        DenseFeatureCache(1024)(module.model.clap, torch.zeros(1, 1, 160000), torch.ones(1, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="max_bytes must be > 0, got 0"):
        DenseFeatureCache(0)


@pytest.mark.parametrize("stage", ["pretrain", "long"])
def test_stage_loss_and_gradients_are_the_same_with_the_cache(stage):
    cached, cached_params = _stage(stage, 16)
    plain, plain_params = _stage(stage, 0)
    assert cached.feature_cache is not None and plain.feature_cache is None
    batch = random_lm_batch(cached.model, B=3, W=2, seed=4)
    batch["audio_window_mask"][1, 1] = False
    for _step in range(2):  # a miss, then a hit
        for module in (cached, plain):
            module.zero_grad()
        loss_c, loss_p = cached(batch), plain(batch)
        loss_c.backward()
        loss_p.backward()
        assert torch.equal(loss_c, loss_p)
        for p, q in zip(cached_params, plain_params):
            assert (p.grad is None) == (q.grad is None)
            if p.grad is not None:
                assert torch.equal(p.grad, q.grad)
    assert cached.feature_cache.stats()["hits"] == 5 and cached.feature_cache.misses == 5


def test_config_rejects_a_negative_budget(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    cfg = merge(SCHEMA, {"data": {"sources": [{"manifest": str(manifest)}]}, "train": {"feature_cache_mb": -1}})
    with pytest.raises(ConfigError, match="train.feature_cache_mb.*must be >= 0, got -1"):
        validate(cfg)

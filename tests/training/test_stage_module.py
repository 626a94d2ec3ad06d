"""The stage module's train/eval split: frozen modules run in eval mode, except that a frozen
decoder layer with gradient checkpointing on keeps its training flag so that it checkpoints."""

from __future__ import annotations

from functools import wraps

import pytest
import torch

from af2.model.random_batch import random_lm_batch
from training.config import SCHEMA, merge
from training.stages import StageModule, build_model, enable_gradient_checkpointing, freeze_for_stage


def _stage(checkpointing: bool):
    cfg = merge(SCHEMA, {"stage": "long", "deepspeed": {"gradient_checkpointing": checkpointing}})
    model = build_model(cfg)
    if checkpointing:
        enable_gradient_checkpointing(model)
    trainable, _ = freeze_for_stage(model, cfg)
    return StageModule(model, cfg), trainable


def _counted(fn, counter: list):
    @wraps(fn)
    def wrapper(*args, **kwargs):
        counter.append(1)
        return fn(*args, **kwargs)

    return wrapper


def test_gradient_checkpointing_runs_in_long_stage(monkeypatch):
    import af2.model.llm as llm_mod

    module, trainable = _stage(True)
    layers = module.model.llm.model.layers
    # the decoder layers are frozen in "long": eval inside, but checkpointing needs their training flag
    assert all(not p.requires_grad for p in layers.parameters())
    assert all(layer.training and layer.gradient_checkpointing for layer in layers)
    assert all(not m.training for layer in layers for m in layer.modules() if m is not layer)
    assert not module.model.clap.training  # frozen AF-CLAP: eval (BatchNorm statistics kept)
    layer_calls, xattn_calls = [], []
    for layer in layers:
        layer._gradient_checkpointing_func = _counted(layer._gradient_checkpointing_func, layer_calls)
    monkeypatch.setattr(llm_mod, "checkpoint", _counted(llm_mod.checkpoint, xattn_calls))
    batch = {**random_lm_batch(module.model), "ids": ["0", "1"]}
    loss = module(batch)
    loss.backward()
    assert len(layer_calls) == len(layers)
    assert len(xattn_calls) == len(module.model.xattn)
    grads = {id(p): p.grad.clone() for p in trainable if p.grad is not None}

    # same loss and gradients as without checkpointing (the weights are seeded identically)
    plain, plain_trainable = _stage(False)
    assert not any(layer.training for layer in plain.model.llm.model.layers)
    plain_loss = plain(batch)
    plain_loss.backward()
    assert torch.allclose(loss, plain_loss, rtol=1e-6, atol=1e-6)
    assert len(grads) == sum(p.grad is not None for p in plain_trainable) > 0
    for p, q in zip(trainable, plain_trainable):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def test_frozen_batchnorm_stays_in_eval():
    module, _ = _stage(True)
    bns = [m for m in module.model.clap.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(m.training for m in bns)
    module.train()  # what DeepSpeed's engine.train() calls
    assert not any(m.training for m in bns)
    assert any(m.training for m in module.model.xattn.modules())


@pytest.mark.parametrize("stage", ["sft"])
def test_trainable_audio_encoder_trains(stage):
    cfg = merge(SCHEMA, {"stage": stage})
    model = build_model(cfg)
    freeze_for_stage(model, cfg)
    module = StageModule(model, cfg)
    assert module.model.clap.audio.training  # HTSAT trainable in sft: its BatchNorm updates


def test_freeze_batchnorm_keeps_running_statistics_where_the_htsat_trains():
    from torch import nn

    from training.config import SCHEMA, merge

    for freeze in (False, True):
        cfg = merge(SCHEMA, {"stage": "sft", "train": {"freeze_batchnorm": freeze}})
        model = build_model(cfg)
        freeze_for_stage(model, cfg)
        module = StageModule(model, cfg)
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert bns and all(m.training != freeze for m in bns)
        mel_bn = model.clap.audio.audio_encoder.batch_norm
        before = mel_bn.running_mean.clone()
        module(random_lm_batch(model, seed=1)).backward()
        assert torch.equal(before, mel_bn.running_mean) == freeze
        assert mel_bn.weight.grad is not None  # its affine parameters still train

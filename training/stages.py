"""Curriculum stages: reference values, the model, the stage module the engine wraps, trainable sets.

=========  ===========  =================================  ==========  ========
stage      max windows  trainable                          lr          data
=========  ===========  =================================  ==========  ========
clap       3 (30 s)     AF-CLAP (HTSAT, T5, MLPs, scale)   1e-4        captions
pretrain   3 (30 s)     audio transformation + xattn + emb 1e-4        short QA
sft        9 (1.5 min)  those + AF-CLAP audio encoder      2e-5        short QA
long       30 (5 min)   as pretrain (AF-CLAP frozen again) 2e-5        long QA
=========  ===========  =================================  ==========  ========

The trainable sets are :meth:`af2.model.AudioFlamingo2.trainable_parameters`; the LLM is always
frozen except its input embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from af2.model import AF2Config, AudioFlamingo2
from training.clap import clap_loss
from training.feature_cache import DenseFeatureCache


class StageModule(nn.Module):
    """What the engine wraps: ``forward(batch) -> loss`` for the stage (LM loss, or AF-CLAP's
    contrastive loss). Its state-dict keys are the model's under ``model.``, in every stage."""

    def __init__(self, model: AudioFlamingo2, cfg: dict):
        super().__init__()
        self.model = model
        self.stage = cfg["stage"]
        self.m, self.n = cfg["clap"]["positives"], cfg["clap"]["negatives"]
        #: train.freeze_batchnorm: every BatchNorm normalises with its running statistics and
        #: never updates them, also where its parameters train (clap, sft)
        self.freeze_batchnorm = bool(cfg["train"].get("freeze_batchnorm", False))
        self.train()  # build after freezing: frozen modules go to eval mode here
        #: the frozen HTSAT's dense features, computed once per distinct window (pretrain, long)
        self.feature_cache = (
            DenseFeatureCache(int(cfg["train"]["feature_cache_mb"] * 2**20)) if uses_feature_cache(model, cfg) else None
        )

    def train(self, mode: bool = True) -> "StageModule":
        """Modules whose parameters are all frozen run in eval mode: a frozen AF-CLAP must not
        update its BatchNorm running statistics (nor run dropout / drop-path). The exception is
        a layer with gradient checkpointing on (transformers' ``GradientCheckpointingLayer``,
        e.g. a frozen Qwen2 decoder layer in the ``long`` stage): it only checkpoints in
        training mode, so the layer itself stays in training mode while everything inside it
        is put in eval mode (same numerics, activations recomputed in the backward).
        With ``train.freeze_batchnorm`` every BatchNorm is in eval mode as well (its affine
        parameters still train where the stage trains them)."""
        super().train(mode)
        if mode:
            if self.freeze_batchnorm:
                for module in self.model.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
            for module in self.model.modules():
                params = list(module.parameters())
                if params and not any(p.requires_grad for p in params):
                    module.eval()
                    if getattr(module, "gradient_checkpointing", False) is True:
                        module.training = True  # only the flag; its children stay in eval
        return self

    def forward(self, batch: dict) -> torch.Tensor:
        if self.stage == "clap":
            return clap_loss(self.model.clap, batch, m=self.m, n=self.n)
        inputs = AudioFlamingo2.batch_inputs(batch)
        if self.feature_cache is not None and self.training and inputs.get("audio_windows") is not None:
            windows = inputs.pop("audio_windows")
            mask = inputs.get("audio_window_mask")
            if mask is None:
                mask = torch.ones(windows.shape[:2], dtype=torch.bool, device=windows.device)
            inputs["dense_features"] = self.feature_cache(
                self.model.clap, windows, mask, batch.get("audio_window_keys")
            )
        return self.model(**inputs).loss


def uses_feature_cache(model: AudioFlamingo2, cfg: dict) -> bool:
    """``train.feature_cache_mb`` > 0 in an LLM stage whose AF-CLAP audio encoder has no trainable
    parameter (after :func:`freeze_for_stage`; :class:`StageModule` runs it in eval mode): its
    dense features are computed once per distinct window."""
    return (
        bool(cfg["train"].get("feature_cache_mb", 0))
        and cfg["stage"] != "clap"
        and not any(p.requires_grad for p in model.clap.audio.parameters())
    )


def build_model(cfg: dict) -> AudioFlamingo2:
    """The model of the config, seeded (every rank and every resume builds the same weights)."""
    mc = cfg["model"]
    config = AF2Config.preset(mc["preset"], **mc["overrides"]) if mc["overrides"] else AF2Config.preset(mc["preset"])
    config.fused = mc["fused"]
    torch.manual_seed(mc["seed"])
    model = AudioFlamingo2(config)
    if model.tokenizer is None:
        raise ValueError("model: the config resolves no tokenizer (set model.overrides.tokenizer_path)")
    return model


def load_init(model: AudioFlamingo2, init_from: str) -> None:
    """Stage hand-off: the previous stage's exported weights (``<init_from>/model``, every
    parameter, fp32 on the CPU) into the plain module, strictly, before the engine is built.
    (DeepSpeed's ``load_checkpoint(load_module_only=True)`` cannot be used across stages: it
    restores the saved stage's frozen-parameter fragments by name into the new stage's frozen
    set, and the sets differ - e.g. AF-CLAP's logit scale is trained in "clap" only.)"""
    from pathlib import Path

    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from training.safe_load import DamagedCheckpointError

    path = Path(init_from) / "model" / "model.safetensors"
    try:
        missing, unexpected = load_model(model, str(path), strict=True)
    except FileNotFoundError:
        raise DamagedCheckpointError(path, "missing (init_from: the previous stage has not finished)") from None
    except (SafetensorError, OSError) as e:
        raise DamagedCheckpointError(path, f"unreadable ({e})") from None
    if missing or unexpected:
        raise RuntimeError(f"init_from {init_from}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def freeze_for_stage(model: AudioFlamingo2, cfg: dict) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Set requires_grad for the stage; returns (trainable, frozen)."""
    trainable = model.set_stage(cfg["stage"])
    keep = {id(p) for p in trainable}
    return trainable, [p for p in model.parameters() if id(p) not in keep]


def enable_gradient_checkpointing(model: AudioFlamingo2) -> None:
    """Checkpoint every LLM decoder layer (and, through af2's xattn hook, its cross-attention
    block). Call before :class:`StageModule` is built (it keeps those layers in training mode)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model.llm, "activation_checkpointing_enable"):  # transformers >= 5.x (the old name is deprecated)
        model.llm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

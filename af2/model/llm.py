"""LLM wiring: transformers' Qwen2ForCausalLM with gated cross-attention before its decoder layers.

The LLM is left exactly as transformers builds it, so its state_dict keys are the plain Qwen2
ones (``model.layers.{i}.self_attn.q_proj.weight``, ``lm_head.weight``, ...) and a real Qwen2.5
checkpoint loads as it is. The blocks live beside it (``xattn.{i}`` of the AF2 model, i = the
decoder layer they precede) and are attached with a forward pre-hook on each decoder layer: when
the call carries media (keyword :data:`MEDIA_KWARG`, a :class:`MediaInputs`), the hook runs the
block on the hidden states entering the layer; without it the LLM is the bare LLM.

The media travel as a keyword argument (Qwen2Model hands its extra keyword arguments to every
decoder layer), not as module state, so activation checkpointing recomputes a layer with the
media it saw in the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from af2.model.config import AF2Config
from af2.nn import GatedCrossAttentionBlock

MEDIA_KWARG = "af2_media"


@dataclass
class MediaInputs:
    """media (B, T, n, D) or None with ``cached``; mask (B, T, n) bool; locations (B, L) bool
    (True at ``<audio>`` tokens of this call); ``cached``: use the blocks' cached media keys and
    values (generation)."""

    media: Optional[torch.Tensor]
    mask: Optional[torch.Tensor]
    locations: torch.Tensor
    cached: bool = False


def build_llm(cfg: AF2Config):
    """A Qwen2ForCausalLM: from ``cfg.llm_path`` (local, offline) or from ``cfg.llm`` (random)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if cfg.llm_path:
        return Qwen2ForCausalLM.from_pretrained(cfg.llm_path, local_files_only=True)
    return Qwen2ForCausalLM(Qwen2Config(**cfg.llm))


def xattn_layers(num_layers: int, every_n: int) -> list[int]:
    """Indices of the decoder layers preceded by a block (open_flamingo: (i + 1) % n == 0)."""
    if every_n < 1:
        raise ValueError(f"xattn.every_n_layers must be >= 1, got {every_n}")
    return [i for i in range(num_layers) if (i + 1) % every_n == 0]


def build_xattn(cfg: AF2Config, llm_hidden: int, num_layers: int) -> nn.ModuleDict:
    """``{str(i): GatedCrossAttentionBlock}`` for the decoder layers :func:`xattn_layers` picks."""
    x = cfg.xattn
    return nn.ModuleDict(
        {
            str(i): GatedCrossAttentionBlock(
                llm_hidden,
                cfg.audio_dim,
                heads=x.heads,
                dim_head=x.dim_head,
                ff_mult=x.ff_mult,
                only_attend_immediate_media=x.only_attend_immediate_media,
                fused=cfg.fused,
            )
            for i in xattn_layers(num_layers, x.every_n_layers)
        }
    )


class _XattnPreHook:
    """Forward pre-hook of one decoder layer: takes :data:`MEDIA_KWARG` out of the call and, if
    the layer has a block and media were given, replaces the hidden states by the block's output."""

    def __init__(self, block: Optional[GatedCrossAttentionBlock]):
        self.block = block

    def __call__(self, module, args, kwargs):
        media: Optional[MediaInputs] = kwargs.pop(MEDIA_KWARG, None)
        if media is None or self.block is None:
            return args, kwargs
        hidden = args[0] if args else kwargs["hidden_states"]
        run = partial(
            self.block,
            media=media.media,
            media_locations=media.locations,
            media_mask=media.mask,
            use_cached_media=media.cached,
        )
        if getattr(module, "gradient_checkpointing", False) and module.training and torch.is_grad_enabled():
            # Checkpoint the block with its layer (transformers >= 5 checkpoints the layer's forward
            # only, which runs after this hook).
            out = checkpoint(run, hidden, use_reentrant=False)
        else:
            out = run(hidden)
        if args:
            return (out, *args[1:]), kwargs
        kwargs["hidden_states"] = out
        return args, kwargs


def attach_xattn(llm, blocks: nn.ModuleDict) -> list:
    """Hook ``blocks`` in front of ``llm``'s decoder layers; returns the hook handles."""
    layers = llm.model.layers
    return [
        layer.register_forward_pre_hook(_XattnPreHook(blocks[str(i)] if str(i) in blocks else None), with_kwargs=True)
        for i, layer in enumerate(layers)
    ]

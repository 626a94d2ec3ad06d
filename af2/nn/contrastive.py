"""AF-CLAP's contrastive objective as a module with a learnable logit scale."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from af2.ops import contrastive_loss


def logit_scale_parameter(log_scale: float) -> nn.Parameter:
    """A learnable log logit scale of shape (1,), holding ``log_scale``.

    Shape (1,) rather than 0-dim: DeepSpeed views every parameter as bytes to broadcast and
    partition it, which a 0-dim tensor cannot be. :func:`af2.ops.contrastive_loss` takes any
    one-element tensor as its scale."""
    return nn.Parameter(torch.full((1,), float(log_scale)))


def upgrade_scalar_logit_scale(state_dict: dict, key: str) -> None:
    """In place: a 0-dim ``state_dict[key]`` (checkpoints written before the scale was (1,))
    becomes shape (1,); anything else is left for ``load_state_dict`` to judge."""
    value = state_dict.get(key)
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        state_dict[key] = value.reshape(1)


class ContrastiveLoss(nn.Module):
    """:func:`af2.ops.contrastive_loss` with a learnable log-scale, CLIP/CLAP style.

    ``logit_scale`` (1,) holds log(s); it starts at log(1/0.07) and is clamped at log(max_scale)
    (log 100) in the forward (call :meth:`clamp_` after an optimiser step to also clamp the
    stored value). forward(audio (B, D), text (B, M, D), hard_negatives (B, M, N, D) | None).
    """

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0, reduction: str = "mean", group=None):
        super().__init__()
        self.logit_scale = logit_scale_parameter(math.log(init_scale))
        self.max_log_scale = math.log(max_scale)
        self.reduction = reduction
        self.group = group

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        upgrade_scalar_logit_scale(state_dict, prefix + "logit_scale")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def scale(self) -> torch.Tensor:
        """The clamped multiplier s, shape (1,)."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def forward(
        self, audio: torch.Tensor, text: torch.Tensor, hard_negatives: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return contrastive_loss(
            audio,
            text,
            logit_scale=self.scale(),
            hard_negatives=hard_negatives,
            reduction=self.reduction,
            group=self.group,
        )

    @torch.no_grad()
    def clamp_(self) -> None:
        self.logit_scale.clamp_(max=self.max_log_scale)

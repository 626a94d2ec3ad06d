"""AF-CLAP's contrastive objective as a module with a learnable logit scale."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from af2.ops import contrastive_loss


class ContrastiveLoss(nn.Module):
    """:func:`af2.ops.contrastive_loss` with a learnable log-scale, CLIP/CLAP style.

    ``logit_scale`` holds log(s); it starts at log(1/0.07) and is clamped at log(max_scale)
    (log 100) in the forward (call :meth:`clamp_` after an optimiser step to also clamp the
    stored value). forward(audio (B, D), text (B, M, D), hard_negatives (B, M, N, D) | None).
    """

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0, reduction: str = "mean",
                 group=None):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.max_log_scale = math.log(max_scale)
        self.reduction = reduction
        self.group = group

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, audio: torch.Tensor, text: torch.Tensor,
                hard_negatives: Optional[torch.Tensor] = None) -> torch.Tensor:
        return contrastive_loss(audio, text, logit_scale=self.scale(), hard_negatives=hard_negatives,
                                reduction=self.reduction, group=self.group)

    @torch.no_grad()
    def clamp_(self) -> None:
        self.logit_scale.clamp_(max=self.max_log_scale)

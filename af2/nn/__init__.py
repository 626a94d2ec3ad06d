"""nn.Modules built on af2.ops."""

from af2.nn.contrastive import ContrastiveLoss
from af2.nn.gated_xattn import GatedCrossAttentionBlock, MaskedCrossAttention, gated_xattn_state_dict_from_flamingo

__all__ = [
    "ContrastiveLoss",
    "GatedCrossAttentionBlock",
    "MaskedCrossAttention",
    "gated_xattn_state_dict_from_flamingo",
]

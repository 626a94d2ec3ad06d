"""nn.Modules built on af2.ops."""
from af2.nn.gated_xattn import (GatedCrossAttentionBlock, MaskedCrossAttention,
                                gated_xattn_state_dict_from_flamingo)

__all__ = ["GatedCrossAttentionBlock", "MaskedCrossAttention", "gated_xattn_state_dict_from_flamingo"]

"""Public Python API of af2's fused operators (``torch.ops.af2.*`` underneath)."""
from af2.ops.contrastive import contrastive_loss
from af2.ops.gated_residual import gated_residual
from af2.ops.media_attention import media_cross_attention, media_key_ranges, media_key_ranges_from_time
from af2.ops.rope import rope_windowed, rope_windowed_qk

__all__ = ["contrastive_loss", "gated_residual", "media_cross_attention", "media_key_ranges", "media_key_ranges_from_time", "rope_windowed", "rope_windowed_qk"]

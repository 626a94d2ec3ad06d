"""Public Python API of af2's fused operators (``torch.ops.af2.*`` underneath).

Importing af2.ops loads the compiled core, which registers the operators (af2/_extension.py).
"""

from af2 import _extension

_extension.load()

# The op modules register fake kernels for the operators, so they come after the core.
from af2.ops.contrastive import contrastive_loss  # noqa: E402
from af2.ops.gated_residual import gated_residual  # noqa: E402
from af2.ops.media_attention import media_cross_attention, media_key_ranges, media_key_ranges_from_time  # noqa: E402
from af2.ops.rope import rope_windowed, rope_windowed_qk  # noqa: E402

__all__ = [
    "contrastive_loss",
    "gated_residual",
    "media_cross_attention",
    "media_key_ranges",
    "media_key_ranges_from_time",
    "rope_windowed",
    "rope_windowed_qk",
]

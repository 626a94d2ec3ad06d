"""Public Python API of af2's fused operators (``torch.ops.af2.*`` underneath)."""
from af2.ops.rope import rope_windowed, rope_windowed_qk

__all__ = ["rope_windowed", "rope_windowed_qk"]

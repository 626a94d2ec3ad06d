"""af2: Audio Flamingo 2 with a fused C++/CUDA core.

Importing af2 loads the compiled core (af2._C), which registers the ``torch.ops.af2``
operators; their Python API is ``af2.ops``.
"""
from af2._version import __version__
from af2 import _extension

_C = _extension.load()

from af2 import ops, reference  # noqa: E402  (ops need the core loaded)
from af2.build import build_info  # noqa: E402

__all__ = ["__version__", "build_info", "ops", "reference"]

"""af2: Audio Flamingo 2 with a fused C++/CUDA core.

``import af2`` is light: it loads neither the compiled core (af2._C) nor any optional package.
The core, which registers the ``torch.ops.af2`` operators, is loaded when ``af2.ops`` (or a part
built on it: af2.nn, af2.integrations, af2.model) is first imported; ``af2.build_info()`` loads it
when called. Subpackages are imported on first attribute access (``af2.ops.rope_windowed``).
Which extra each part needs: af2/_deps.py.
"""

from __future__ import annotations

import importlib

from af2._version import __version__

_SUBPACKAGES = ("data", "eval", "integrations", "llm", "model", "nn", "ops", "reference")

__all__ = ["__version__", "build_info", *_SUBPACKAGES]


def __getattr__(name: str):
    if name == "build_info":
        from af2.build import build_info

        return build_info
    if name in _SUBPACKAGES:
        return importlib.import_module(f"af2.{name}")
    raise AttributeError(f"module 'af2' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

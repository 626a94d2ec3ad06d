"""Reading checkpoint files without running code from them.

Every ``.pt`` file of a training checkpoint (DeepSpeed's model and optimizer states, the RNG
states) is read with ``torch.load(weights_only=True)``: tensors, containers and plain values
only, plus the few DeepSpeed classes below that its ZeRO optimizer states hold. A file that
needs anything else (a planted pickle whose ``__reduce__`` calls ``os.system``, say) is refused
before any of it is built: :class:`UnsafeCheckpointError`, naming the file (so is any other
content the weights-only unpickler rejects: af2 never writes such a file). A file cut short or
unreadable (truncated zip, empty, I/O error) is :class:`DamagedCheckpointError`.

``SafeCheckpointEngine`` is DeepSpeed's torch checkpoint engine with its ``load`` (which calls
``torch.load(weights_only=False)``) replaced by :func:`load_file`; :func:`install` puts it on an
engine (``training.checkpoint.load`` does, before ``engine.load_checkpoint``), so DeepSpeed reads
nothing else. See docs/checkpoints.md.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import torch

_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; ``path`` is the file or directory at fault."""

    def __init__(self, path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file is missing, truncated or unreadable."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds pickled objects outside the allow-list (it could run code)."""


class NoUsableCheckpointError(CheckpointError):
    """``--resume`` found checkpoints, none of them usable."""


def allowed_globals() -> list:
    """The classes (beyond torch's weights-only defaults) that af2's DeepSpeed checkpoints hold:
    ZeRO-1/2/3 optimizer states record the loss scaler (a static ``LossScaler`` with fp32 and
    bf16), the ZeRO stage (an int ``Enum``) and, for ZeRO-1/2, each parameter's place in the
    flat partition (``fragment_address``, a dataclass of two ints). Module states, torch
    optimizer and LambdaLR states, and the RNG files need none."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


def _why_refused(message: str) -> str:
    """The weights-only unpickler's reason (e.g. "Unsupported global: GLOBAL posix.system ...")."""
    marker = "WeightsUnpickler error:"
    if marker in message:
        message = message.split(marker, 1)[1]
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "not a weights-only file"


def load_file(path, map_location="cpu", *, mmap: bool = False):
    """``torch.load(path, weights_only=True)`` with :func:`allowed_globals`; ``mmap=True`` (zip
    files only, the format torch and DeepSpeed write) maps the tensor data instead of reading it
    (the pickle is still checked in full). Raises :class:`UnsafeCheckpointError` or
    :class:`DamagedCheckpointError`, both naming ``path``."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            is_zip = fh.read(4) == _ZIP_MAGIC
    except OSError as e:
        raise DamagedCheckpointError(path, f"cannot be read ({e.strerror or e})") from None
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            path,
            f"refused: the weights-only loader rejects it ({_why_refused(str(e))}). It is not a file "
            f"af2 wrote (only tensors and af2's checkpoint types are allowed), and unpickling it could "
            f"run code: delete this checkpoint if you did not write it",
        ) from None
    except Exception as e:  # truncated zip, EOF, bad header: torch raises RuntimeError, EOFError, ...
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise DamagedCheckpointError(path, f"unreadable ({reason})") from None


@functools.cache
def _engine_class():
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine

    class SafeCheckpointEngine(TorchCheckpointEngine):
        """DeepSpeed's torch checkpoint engine, loading through :func:`load_file`."""

        def load(self, path: str, map_location=None):
            return load_file(path, map_location=map_location)

    return SafeCheckpointEngine


def install(engine) -> None:
    """Make ``engine.load_checkpoint`` read through :func:`load_file` (call after initialize)."""
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine

    safe = _engine_class()
    current = getattr(engine, "checkpoint_engine", None)
    if type(current) is safe:
        return
    if type(current) is not TorchCheckpointEngine:  # another engine (decoupled, fast, ...) would load unchecked
        raise RuntimeError(
            f"unexpected DeepSpeed checkpoint engine {type(current).__name__}: af2 loads "
            "checkpoints only through its weights-only torch engine"
        )
    engine.checkpoint_engine = safe(engine._config)

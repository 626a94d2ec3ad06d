"""AF2's training curriculum: the stage names, in training order.

``clap`` trains AF-CLAP contrastively; ``pretrain`` (30-s clips), ``sft`` (1.5 min) and
``long`` (5 min) train the cross-attention path of the language model. The model
(:meth:`af2.model.AudioFlamingo2.trainable_parameters`), the stage configs (``training.config``)
and the main job (``training.demo``) all take their stage names from here.
"""

from __future__ import annotations

STAGES: tuple[str, ...] = ("clap", "pretrain", "sft", "long")

__all__ = ["STAGES"]

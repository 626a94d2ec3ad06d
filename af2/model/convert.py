"""The public AF2 release -> a ``from_pretrained`` directory in one step.

:func:`convert_official` reads the release (``safe_ckpt/`` shards + ``metadata.json``, a
``.safetensors`` file, or a training / AF-CLAP ``.pt`` read with ``weights_only=True``; see
af2.model.importer.read_official_checkpoint), loads it with
:func:`~af2.model.importer.load_official_checkpoint` into a model of the af2-3b config (or the one
given), and saves it with its processor and the official front-end defaults
(``audio_normalization="official"``, ``official_format=True``). AF-CLAP's text tower is not part
of the release, so the converted model is built without it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

from af2.model.importer import ImportReport, load_official_checkpoint


def convert_official(
    src: str | Path,
    out: str | Path,
    *,
    config=None,
    llm_path: Optional[str | Path] = None,
    tokenizer=None,
    max_shard_size: str | int = "5GB",
) -> ImportReport:
    """Convert the release at ``src`` into ``out``; returns the import report.

    ``config``: an AudioFlamingo2Config (default: the af2-3b preset); ``llm_path``: a local
    Qwen2.5 directory whose tokenizer gets AF2's tokens (or pass ``tokenizer``). Raises
    ValueError when no tokenizer can be had, or when the checkpoint names tensors no rule maps
    (they would be silently dropped otherwise)."""
    from af2.model.af2 import AudioFlamingo2ForConditionalGeneration
    from af2.model.configuration_af2 import AudioFlamingo2Config
    from af2.model.tokenizer import load_tokenizer

    cfg = copy.deepcopy(config) if config is not None else AudioFlamingo2Config.preset("af2-3b")
    cfg.clap_text_config = None
    cfg.audio_normalization, cfg.official_format = "official", True
    if tokenizer is None and llm_path is not None:
        tokenizer = load_tokenizer(str(llm_path))
    if tokenizer is None and cfg.tokenizer is None and cfg.tokenizer_path is None:
        raise ValueError("convert_official needs AF2's tokenizer: pass llm_path (a Qwen2.5 directory) or tokenizer")
    model = AudioFlamingo2ForConditionalGeneration(cfg, tokenizer=tokenizer)
    report = load_official_checkpoint(model, src)
    if report.unknown:
        raise ValueError(f"{src}: {len(report.unknown)} tensors match no official name: {report.unknown[:8]}")
    model.save_pretrained(out, max_shard_size=max_shard_size)
    return report

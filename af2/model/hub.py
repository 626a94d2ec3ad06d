"""The model directory around the weights: Auto-class registration, the tokenizer beside the
weights, af2's older checkpoint format, the model card written on save."""

from __future__ import annotations

import json
from pathlib import Path

_REGISTERED = False


def register_auto_classes() -> None:
    """Register AF2 with AutoConfig, AutoModel, AutoModelForSeq2SeqLM (the generation Auto class
    transformers maps AudioFlamingo3 to; also AutoModelForPreTraining), AutoFeatureExtractor and
    AutoProcessor. Idempotent; runs on ``import af2.model``."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import (
        AutoConfig,
        AutoFeatureExtractor,
        AutoModel,
        AutoModelForPreTraining,
        AutoModelForSeq2SeqLM,
        AutoProcessor,
    )

    from af2.model.af2 import AudioFlamingo2ForConditionalGeneration
    from af2.model.configuration_af2 import AudioFlamingo2AudioTransformerConfig, AudioFlamingo2Config
    from af2.model.processing_af2 import AudioFlamingo2FeatureExtractor, AudioFlamingo2Processor

    AutoConfig.register(AudioFlamingo2Config.model_type, AudioFlamingo2Config, exist_ok=True)
    AutoConfig.register(
        AudioFlamingo2AudioTransformerConfig.model_type, AudioFlamingo2AudioTransformerConfig, exist_ok=True
    )
    for auto in (AutoModel, AutoModelForSeq2SeqLM, AutoModelForPreTraining):
        auto.register(AudioFlamingo2Config, AudioFlamingo2ForConditionalGeneration, exist_ok=True)
    AutoFeatureExtractor.register(AudioFlamingo2Config, AudioFlamingo2FeatureExtractor, exist_ok=True)
    AutoProcessor.register(AudioFlamingo2Config, AudioFlamingo2Processor, exist_ok=True)
    _REGISTERED = True


# -- loading --------------------------------------------------------------------------------------
def is_legacy_checkpoint(path) -> bool:
    """A local directory in af2's older format: config.json (an AF2Config, no ``model_type``) and
    one model.safetensors."""
    d = Path(str(path))
    cfg = d / "config.json"
    if not (d.is_dir() and cfg.is_file() and (d / "model.safetensors").is_file()):
        return False
    try:
        return "model_type" not in json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError):
        return False


def load_legacy(cls, directory, *, tokenizer=None, dtype=None, strict: bool = True, **ignored):
    """An older af2 directory through af2.model.checkpoint.load_pretrained (meta build, safetensors only)."""
    from af2.model.checkpoint import load_pretrained

    if isinstance(dtype, str):
        import torch

        dtype = None if dtype == "auto" else getattr(torch, dtype)
    model = load_pretrained(cls, directory, dtype=dtype, strict=strict)
    if tokenizer is not None:
        model.tokenizer = tokenizer
    return model


def load_tokenizer_beside(name_or_path, kwargs: dict):
    """The tokenizer saved with the weights (same directory or hub id), or None if there is none."""
    from transformers import AutoTokenizer

    hub = {k: kwargs[k] for k in ("local_files_only", "revision", "token", "cache_dir", "subfolder") if k in kwargs}
    d = Path(str(name_or_path))
    if d.is_dir() and not any((d / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        return None
    try:
        return AutoTokenizer.from_pretrained(str(name_or_path), **hub)
    except (OSError, ValueError):
        return None


# -- saving ---------------------------------------------------------------------------------------
def write_model_card(model, directory: Path) -> None:
    """A short README.md (unless the directory has one): what the model is and how to run it."""
    card = directory / "README.md"
    if card.exists():
        return
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    card.write_text(f"""---
library_name: transformers
tags: [audio-flamingo-2, audio-text-to-text, af2]
pipeline_tag: audio-text-to-text
---
# Audio Flamingo 2 ({c.preset_name})

An Audio Flamingo 2 model (AF-CLAP HTSAT audio encoder, audio transformation, gated
cross-attention into a Qwen2 language model) written by af2; {n / 1e6:.1f}M parameters.
Front end: {c.sampling_rate} Hz mono, {c.window_seconds:g}-s windows (at most {c.max_windows}),
level normalisation `{c.audio_normalization}`, official prompt format: {c.official_format}.

```python
import af2.model  # registers the Auto classes
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{directory.name}")
processor = AutoProcessor.from_pretrained("{directory.name}")
inputs = processor(text="What is happening in this audio?", audio="clip.wav")
answer = processor.batch_decode(model.generate(**inputs, max_new_tokens=64)[:, inputs["input_ids"].shape[1]:])
```
""")

"""save_pretrained / from_pretrained: a directory of safetensors + config JSON, nothing pickled.

Layout::

    <dir>/config.json          AF2Config (self-contained: llm_path / tokenizer_path / text_path
                               cleared, since the weights are in the file)
    <dir>/model.safetensors    every parameter and persistent buffer of the model; tensors that
                               share storage (tied lm_head / embed_tokens) are stored once
    <dir>/tokenizer/           the tokenizer (transformers' save_pretrained), when the model has one

Loading never downloads (``local_files_only=True``) and never unpickles.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


def save_pretrained(model, directory: str | Path) -> None:
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    cfg = dataclasses.replace(cfg, llm_path=None, tokenizer=None, tokenizer_path=None,
                              clap=dataclasses.replace(cfg.clap, text_path=None))
    cfg.to_json(directory / CONFIG_NAME)
    save_model(model, str(directory / WEIGHTS_NAME))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))


def load_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu", strict: bool = True):
    """Build ``cls`` from ``<dir>/config.json`` and load ``<dir>/model.safetensors`` into it."""
    from safetensors.torch import load_model

    from af2.model.config import AF2Config

    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME} and {WEIGHTS_NAME} (not an af2 checkpoint)")
    cfg = AF2Config.from_json(directory / CONFIG_NAME)
    tokenizer = None
    if (directory / TOKENIZER_DIR).is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory / TOKENIZER_DIR), local_files_only=True)
    model = cls(cfg, tokenizer=tokenizer)
    missing, unexpected = load_model(model, str(directory / WEIGHTS_NAME), strict=strict, device=str(device))
    if missing or unexpected:
        model.load_warnings = {"missing": sorted(missing), "unexpected": sorted(unexpected)}
    return model.to(device)

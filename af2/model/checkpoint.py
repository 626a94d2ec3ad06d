"""save_pretrained / from_pretrained: a directory of safetensors + config JSON, nothing pickled.

Layout::

    <dir>/config.json          AF2Config (self-contained: llm_path / tokenizer_path / text_path
                               cleared, since the weights are in the file)
    <dir>/model.safetensors    every parameter and persistent buffer of the model, in its own
                               dtype; tensors that share storage (tied lm_head / embed_tokens) are
                               stored once; the metadata records the dtypes of the non-persistent
                               buffers (RoPE ``inv_freq``), which are rebuilt rather than stored
    <dir>/tokenizer/           the tokenizer (transformers' save_pretrained), when the model has one

Loading never downloads (``local_files_only=True``) and never unpickles. It builds the model with
its parameters on the meta device (no random initialisation, no memory for a first copy: af2-3b
would take ~19 GB in float32 before the real weights arrive), then assigns the file's tensors,
cast to ``dtype`` one by one when one is asked for. Buffers (small) are built for real, so the
non-persistent ones (computed in ``__init__``) are right.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Optional

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
BUFFER_DTYPES_KEY = "af2_nonpersistent_buffer_dtypes"


def _nonpersistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    saved = set(model.state_dict().keys())
    return {name: b for name, b in model.named_buffers() if name not in saved}


def save_pretrained(model, directory: str | Path) -> None:
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    cfg = cfg.to_af2_config() if hasattr(cfg, "to_af2_config") else cfg
    cfg = dataclasses.replace(
        cfg, llm_path=None, tokenizer=None, tokenizer_path=None, clap=dataclasses.replace(cfg.clap, text_path=None)
    )
    cfg.to_json(directory / CONFIG_NAME)
    dtypes = {name: str(b.dtype).removeprefix("torch.") for name, b in _nonpersistent_buffers(model).items()}
    save_model(model, str(directory / WEIGHTS_NAME), metadata={"format": "pt", BUFFER_DTYPES_KEY: json.dumps(dtypes)})
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))


@contextlib.contextmanager
def parameters_on_meta():
    """Inside, every ``nn.Parameter`` registered by a module is moved to the meta device as it is
    registered (each is allocated only while its own constructor runs); buffers stay real."""
    original = nn.Module.register_parameter

    def register(module, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def _alias_groups(model: nn.Module) -> list[list[str]]:
    """Names of parameters that are one object (tied weights), as groups of >= 2 names."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _set_parameter(model: nn.Module, name: str, param: nn.Parameter) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(model.get_submodule(owner) if owner else model, attr, param)


def load_pretrained(
    cls,
    directory: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: Optional[torch.dtype] = None,
    strict: bool = True,
):
    """Build ``cls`` from ``<dir>/config.json`` and load ``<dir>/model.safetensors`` into it.

    ``dtype=None`` keeps the dtypes of the file (a bf16 checkpoint loads as bf16, a mixed one as
    saved); a floating ``dtype`` casts every floating tensor to it, as ``model.to(dtype)`` would,
    but tensor by tensor. With ``strict=False`` missing or unexpected names are allowed and
    recorded in ``model.load_warnings``; the parameters the file lacks keep a random
    initialisation (the model is then built in full first, the slower path)."""
    from safetensors import safe_open

    from af2.model.config import AF2Config

    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME} and {WEIGHTS_NAME} (not an af2 checkpoint)")
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    cfg = AF2Config.from_json(directory / CONFIG_NAME)
    tokenizer = None
    if (directory / TOKENIZER_DIR).is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory / TOKENIZER_DIR), local_files_only=True)

    with parameters_on_meta():
        model = cls(cfg, tokenizer=tokenizer)
    expected = set(model.state_dict().keys())
    aliases = _alias_groups(model)
    with safe_open(str(directory / WEIGHTS_NAME), framework="pt", device=str(device)) as f:
        names = set(f.keys())
        metadata = f.metadata() or {}
        for group in aliases:  # a tied weight is stored under one of its names
            present = [n for n in group if n in names]
            names |= set(group) if present else set()
        missing, unexpected = sorted(expected - names), sorted(names - expected)
        if missing and strict:
            raise RuntimeError(f"{directory / WEIGHTS_NAME} lacks {len(missing)} tensors: {missing[:8]}")
        if unexpected and strict:
            raise RuntimeError(f"{directory / WEIGHTS_NAME} has {len(unexpected)} unexpected tensors: {unexpected[:8]}")
        if missing and any(n in dict(model.named_parameters(remove_duplicate=False)) for n in missing):
            model = cls(cfg, tokenizer=tokenizer)  # parameters the file lacks need an initialisation
        state = {}
        for key in f.keys():
            if key not in expected:
                continue
            t = f.get_tensor(key)
            state[key] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    for group in aliases:
        present = [n for n in group if n in state]
        for name in group:
            if present and name not in state:
                state[name] = state[present[0]]
    model.load_state_dict(state, strict=False, assign=True)
    for group in aliases:  # assign made one Parameter per name: tie them again
        first = model.get_parameter(group[0])
        for name in group[1:]:
            _set_parameter(model, name, first)
    recorded = json.loads(metadata.get(BUFFER_DTYPES_KEY, "{}"))
    for name, buf in _nonpersistent_buffers(model).items():
        want = (
            dtype
            if dtype is not None and buf.is_floating_point()
            else (getattr(torch, recorded[name]) if name in recorded else None)
        )
        if want is not None and buf.dtype != want:
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner) if owner else model, attr, buf.to(want))
    if dtype is not None:
        model.to(dtype)  # the random-initialised rest (strict=False) too
    if missing or unexpected:
        model.load_warnings = {"missing": missing, "unexpected": unexpected}
    left = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise RuntimeError(f"parameters left on the meta device: {left[:8]}")
    return model.to(device)

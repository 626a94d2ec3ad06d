"""Importer for the public AF2 checkpoint layout (NVIDIA/audio-flamingo, branch audio_flamingo_2).

Name map, official -> ours (``{i}`` decoder layer, ``{l}`` audio-transformer layer, ``{p}``
weight|bias, ``{rest}`` the rest of the name, unchanged):

====================================================================  ==========================================
official (``Flamingo.state_dict()``)                                   ours (``AudioFlamingo2.state_dict()``)
====================================================================  ==========================================
``clap.nvclap.<htsat>``                                                ``clap.audio.audio_encoder.<hf>`` (HTSAT rules below)
``audio_transformer_clap.layer_norm.{p}``                              ``audio_transformer.norm.{p}``
``audio_transformer_clap.layer_stack.{l}.slf_attn.w_qs.weight``        ``audio_transformer.layers.{l}.attn.q_proj.weight``
``…slf_attn.w_ks.weight`` / ``w_vs.weight`` / ``fc.weight``            ``…attn.k_proj`` / ``v_proj`` / ``out_proj`` ``.weight``
``…slf_attn.layer_norm.{p}``                                           ``…attn.norm.{p}``
``…pos_ffn.w_1.{p}`` / ``w_2.{p}`` / ``layer_norm.{p}``                ``…ffn.fc1.{p}`` / ``fc2.{p}`` / ``norm.{p}``
``audio_transformer_clap.position_enc.inv_freq``                       (checked against rope base / rotary_dim, not stored)
``lang_encoder.model.layers.{i}.gated_cross_attn_layer_sound.{rest}``  ``xattn.{i}.{rest}`` (af2.nn.gated_xattn_state_dict_from_flamingo)
``lang_encoder.model.layers.{i}.decoder_layer.{rest}``                 ``llm.model.layers.{i}.{rest}``
``lang_encoder.model.embed_tokens.weight`` / ``model.norm.weight``     ``llm.model.embed_tokens.weight`` / ``llm.model.norm.weight``
``lang_encoder.lm_head.weight``                                        ``llm.lm_head.weight`` (tied to embed_tokens)
====================================================================  ==========================================

Accepted aliases (rewritten first): a leading ``module.`` (training .pt files);
``clap.afclap.`` (training code) and ``module.audio_branch.`` / ``audio_branch.`` (AF-CLAP's
``epoch_16.pt``) for ``clap.nvclap.``; ``lang_encoder.old_decoder_blocks.{i}.`` for
``lang_encoder.model.layers.{i}.decoder_layer.``; ``lang_encoder.gated_cross_attn_layers_sound.{i}.``
for ``…layers.{i}.gated_cross_attn_layer_sound.``.

HTSAT rules (transformers' ``convert_clap_original_pytorch_to_hf.py``), applied in order as
substring replacements: ``attn``->``attention.self``, ``self.proj``->``output.dense``,
``mlp.fc1``->``intermediate.dense``, ``mlp.fc2``->``output.dense``, ``norm1``->``layernorm_before``,
``norm2``->``layernorm_after``, ``bn0``->``batch_norm``; the fused ``attn.qkv.{p}`` (3C rows) is split
in three, in order ``query``, ``key``, ``value``.

Official names with no counterpart, dropped: ``clap.nvclap.spectrogram_extractor.*`` and
``logmel_extractor.melW`` (our mel is ``torch.stft`` + a filter bank built from the config),
``tscam_conv.*`` and ``head.*`` (the AudioSet classifier, unused by AF2), ``*.attn_mask`` (buffers
that transformers recomputes). AF-CLAP's text tower, projections and logit scale are not part of
the AF2 release: they keep their current values. Any subset of the official names loads; what is
absent keeps the model's current values (as the official loader's ``strict=False``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from af2.nn import gated_xattn_state_dict_from_flamingo

_ALIASES = [
    (r"^(?:module\.)+", ""),
    (r"^clap\.afclap\.", "clap.nvclap."),
    (r"^audio_branch\.", "clap.nvclap."),
    (r"^lang_encoder\.old_decoder_blocks\.(\d+)\.", r"lang_encoder.model.layers.\1.decoder_layer."),
]
_XATTN = re.compile(
    r"^lang_encoder\.(?:model\.layers\.(\d+)\.gated_cross_attn_layer_sound|"
    r"gated_cross_attn_layers_sound\.(\d+))\."
)

# (official, ours); {l}/{i} = a layer index, {p} = weight|bias, {rest} = any remaining name.
NAME_TABLE = [
    ("audio_transformer_clap.layer_norm.{p}", "audio_transformer.norm.{p}"),
    ("audio_transformer_clap.layer_stack.{l}.slf_attn.w_qs.weight", "audio_transformer.layers.{l}.attn.q_proj.weight"),
    ("audio_transformer_clap.layer_stack.{l}.slf_attn.w_ks.weight", "audio_transformer.layers.{l}.attn.k_proj.weight"),
    ("audio_transformer_clap.layer_stack.{l}.slf_attn.w_vs.weight", "audio_transformer.layers.{l}.attn.v_proj.weight"),
    ("audio_transformer_clap.layer_stack.{l}.slf_attn.fc.weight", "audio_transformer.layers.{l}.attn.out_proj.weight"),
    ("audio_transformer_clap.layer_stack.{l}.slf_attn.layer_norm.{p}", "audio_transformer.layers.{l}.attn.norm.{p}"),
    ("audio_transformer_clap.layer_stack.{l}.pos_ffn.w_1.{p}", "audio_transformer.layers.{l}.ffn.fc1.{p}"),
    ("audio_transformer_clap.layer_stack.{l}.pos_ffn.w_2.{p}", "audio_transformer.layers.{l}.ffn.fc2.{p}"),
    ("audio_transformer_clap.layer_stack.{l}.pos_ffn.layer_norm.{p}", "audio_transformer.layers.{l}.ffn.norm.{p}"),
    ("lang_encoder.model.layers.{i}.gated_cross_attn_layer_sound.{rest}", "xattn.{i}.{rest}"),
    ("lang_encoder.model.layers.{i}.decoder_layer.{rest}", "llm.model.layers.{i}.{rest}"),
    ("lang_encoder.model.embed_tokens.weight", "llm.model.embed_tokens.weight"),
    ("lang_encoder.model.norm.weight", "llm.model.norm.weight"),
    ("lang_encoder.lm_head.weight", "llm.lm_head.weight"),
    ("clap.nvclap.{rest}", "clap.audio.audio_encoder.{rest}"),  # + the HTSAT rules
]
_HTSAT_RULES = [
    ("attn", "attention.self"),
    ("self.proj", "output.dense"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
    ("norm1", "layernorm_before"),
    ("norm2", "layernorm_after"),
    ("bn0", "batch_norm"),
]
_HTSAT_INVERSE = [
    ("attention.output.dense", "attn.proj"),
    ("attention.self.", "attn."),
    ("intermediate.dense", "mlp.fc1"),
    ("output.dense", "mlp.fc2"),
    ("layernorm_before", "norm1"),
    ("layernorm_after", "norm2"),
    ("batch_norm", "bn0"),
]
_HTSAT_DROPPED = re.compile(r"^(spectrogram_extractor|logmel_extractor|tscam_conv|head)\.|\.attn_mask$")
INV_FREQ = "audio_transformer_clap.position_enc.inv_freq"
_GROUPS = {"l": r"(?P<l>\d+)", "i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)", "rest": r"(?P<rest>.+)"}


def _regex(pattern: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", pattern)
    return re.compile("^" + "".join(_GROUPS[p] if k % 2 else re.escape(p) for k, p in enumerate(parts)) + "$")


_FORWARD = [(_regex(o), u) for o, u in NAME_TABLE]
_BACKWARD = [(_regex(u), o) for o, u in NAME_TABLE]


def htsat_to_hf(name: str) -> list[str]:
    """An official HTSAT name -> the ClapAudioModel name(s) under ``audio_encoder.`` ([] if dropped;
    three for a fused qkv: query, key, value)."""
    if _HTSAT_DROPPED.search(name):
        return []
    for old, new in _HTSAT_RULES:
        name = name.replace(old, new)
    if ".qkv." in name:
        return [name.replace(".qkv.", f".{part}.") for part in ("query", "key", "value")]
    return [name]


def hf_to_htsat(name: str) -> str:
    """Inverse of :func:`htsat_to_hf` (query/key/value map to the fused ``attn.qkv``)."""
    for old, new in _HTSAT_INVERSE:
        name = name.replace(old, new)
    return re.sub(r"\.attn\.(query|key|value)\.", ".attn.qkv.", name)


@dataclass
class ImportReport:
    """loaded: our names set from the checkpoint; dropped: official names with no counterpart;
    unknown: names matching no rule; missing: our names the checkpoint did not set."""

    loaded: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    missing: list = field(default_factory=list)


def _canonical(name: str) -> str:
    for rx, repl in _ALIASES:
        name = re.sub(rx, repl, name)
    return name


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, rope_base: float = 4096.0, rotary_dim: int = 128
) -> tuple[dict, ImportReport]:
    """Official AF2 (or AF-CLAP ``epoch_16.pt``) names -> ours. Returns (our state_dict, report).
    Raises ValueError if ``position_enc.inv_freq`` disagrees with ``rope_base`` / ``rotary_dim``."""
    out, report, xattn_layers = {}, ImportReport(), set()
    canon = {}
    for key, value in state_dict.items():
        canon.setdefault(_canonical(key), value)
    for key, value in canon.items():
        if m := _XATTN.match(key):
            xattn_layers.add(int(m.group(1) or m.group(2)))
            continue
        if key == INV_FREQ:
            expect = 1.0 / rope_base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim)
            if value.shape != expect.shape or (
                not value.is_meta and not torch.allclose(value.double().cpu(), expect, rtol=1e-5)
            ):
                raise ValueError(f"{INV_FREQ} does not match rope_base={rope_base}, rotary_dim={rotary_dim}")
            report.dropped.append(key)
            continue
        _convert_one(key, value, out, report)
    for i in sorted(xattn_layers):
        for name, value in gated_xattn_state_dict_from_flamingo(canon, layer=i).items():
            out[f"xattn.{i}.{name}"] = value
    report.loaded = sorted(out)
    return out, report


def _convert_one(key: str, value: torch.Tensor, out: dict, report: ImportReport) -> None:
    for rx, template in _FORWARD:
        m = rx.match(key)
        if not m:
            continue
        ours = template.format(**m.groupdict())
        if not template.startswith("clap.audio."):
            out[ours] = value
            return
        names = htsat_to_hf(m.group("rest"))
        if not names:
            report.dropped.append(key)
        for name, part in zip(names, value.chunk(len(names), dim=0) if len(names) > 1 else [value]):
            out["clap.audio.audio_encoder." + name] = part
        return
    report.unknown.append(key)


def to_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, rope_base: float = 4096.0, rotary_dim: int = 128
) -> dict:
    """Ours -> the official layout (canonical spellings; qkv fused; inv_freq added). Our names with
    no official counterpart (AF-CLAP text tower, projections, logit scale) are left out."""
    out, qkv = {}, {}
    for key, value in state_dict.items():
        for rx, template in _BACKWARD:
            m = rx.match(key)
            if not m:
                continue
            groups = m.groupdict()
            if template.startswith("clap.nvclap."):
                groups["rest"] = hf_to_htsat(groups["rest"])
                if ".attn.qkv." in groups["rest"]:
                    part = re.search(r"\.self\.(query|key|value)\.", m.group("rest")).group(1)
                    qkv.setdefault(template.format(**groups), {})[part] = value
                    break
            out[template.format(**groups)] = value
            break
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    out[INV_FREQ] = 1.0 / rope_base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim)
    return out


def read_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of an official checkpoint, never unpickling code:

    - a directory holding ``metadata.json`` (or ``safe_ckpt/metadata.json``): each shard
      ``<name>.safetensors`` named by it (its keys if an object, its items if a list), merged;
    - a ``.safetensors`` file;
    - a ``.pt``/``.pth``/``.bin`` file via ``torch.load(weights_only=True)``, unwrapping
      ``state_dict`` / ``model_state_dict`` / ``model``.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        root = path / "safe_ckpt" if (path / "safe_ckpt" / "metadata.json").is_file() else path
        meta = json.loads((root / "metadata.json").read_text())
        merged: dict = {}
        for name in meta:
            merged.update(load_file(str(root / f"{name}.safetensors")))
        return merged
    if path.suffix == ".safetensors":
        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def load_official_checkpoint(model, path: str | Path) -> ImportReport:
    """Load an official AF2 checkpoint (see :func:`read_official_checkpoint`) into an
    :class:`~af2.model.AudioFlamingo2`; names it does not hold keep their values."""
    at = model.config.audio_transformer
    converted, report = convert_official_state_dict(
        read_official_checkpoint(path), rope_base=at.rope_base, rotary_dim=at.rotary_dim
    )
    ours = model.state_dict()
    bad = [
        f"{k}: {tuple(v.shape)} vs ours {tuple(ours[k].shape)}"
        for k, v in converted.items()
        if k in ours and v.shape != ours[k].shape
    ]
    if bad:
        raise ValueError("official checkpoint shapes differ from this model's config: " + "; ".join(bad[:10]))
    result = model.load_state_dict(converted, strict=False)
    report.unknown += list(result.unexpected_keys)
    report.missing = sorted(result.missing_keys)
    return report

"""Stage configs: a YAML schema with defaults, deep-merged overrides and validation.

Every key is declared in :data:`SCHEMA` (nested dicts of defaults). Unknown keys, wrong types,
impossible batch/window budgets and missing data fail in :func:`load_config` /
:func:`validate`, before any model or engine is built, with a :class:`ConfigError` that names
the key (``data.max_windows_per_batch``). Relative paths are taken from the working directory.
A logger asked for (``output.tensorboard: true``, ``output.wandb: offline``) whose package is not
installed is such an error too. ``--config`` takes a file, or the name of a config shipped in
``training/configs`` (``pretrain``): :func:`resolve_config_path`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml

from af2 import errors
from af2.stages import STAGES

#: Every key a stage config may set, with its default. ``None`` defaults accept ``None`` or any
#: value of the type written in :data:`TYPES`.
SCHEMA: dict[str, Any] = {
    "stage": "pretrain",
    "model": {"preset": "tiny", "overrides": {}, "fused": True, "seed": 0},
    "init_from": None,  # a previous stage's output dir: its exported weights (<dir>/model) are loaded
    "data": {
        "sources": [],  # [{manifest, weight, long_audio: any|only|exclude}]
        "max_windows": 3,
        "max_windows_per_batch": 24,
        "max_batch_size": None,
        "max_length": None,
        "num_workers": 0,
        "seed": 0,
        # skip (and report) a sample marked "long_audio" that is longer than max_windows windows,
        # instead of training on its cut copy (its answer is about the whole recording)
        "skip_truncated_long_audio": False,
    },
    "clap": {"positives": 2, "negatives": 2, "batch_size": 4, "max_text_length": 48},
    "optim": {
        "lr": 1e-4,
        "weight_decay": 0.1,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "grad_clip": 1.0,
        "warmup_steps": 0,
        "schedule": "cosine",
        "min_lr_ratio": 0.1,
    },
    "train": {
        "max_steps": 10,
        "grad_accum": 1,
        "seed": 0,
        "checkpoint_every": 0,
        "keep_checkpoints": 2,
        "max_nonfinite": 10,
        "progress": True,
        # > 0: keep the frozen AF-CLAP's dense features of up to this many MB of distinct
        # windows (pretrain / long; training.feature_cache): later epochs skip the HTSAT
        "feature_cache_mb": 0.0,
        # BatchNorm layers (the HTSAT's mel normalisation) keep their running statistics
        # in every stage instead of re-estimating them on the stage's batches
        "freeze_batchnorm": False,
        # set the audio transformation's input LayerNorm so that its outputs are
        # standardised per feature over the stage's first batches (training.norm_init);
        # for the stage that first trains the audio transformation (pretrain)
        "init_audio_norm_from_data": False,
    },
    "deepspeed": {"zero_stage": 2, "precision": "auto", "gradient_checkpointing": False, "exclude_frozen": True},
    # loggers besides metrics.jsonl: TensorBoard scalars in <dir>/tensorboard (pip install 'af2[train]');
    # Weights & Biases, "offline" (a local run in <dir>/wandb, `wandb sync` uploads it later) or
    # "online" (pip install 'af2[wandb]'); null / false: off
    "output": {"dir": "runs/stage", "tensorboard": False, "wandb": None},
    # test hooks: make the loss non-finite at these (1-based) steps (in micro-batch nan_micro_batch
    # only, 0-based, if set); make the gradients non-finite (finite loss) at these steps
    "debug": {"nan_loss_steps": [], "nan_micro_batch": None, "nan_grad_steps": []},
}
TYPES = {
    "init_from": str,
    "output.wandb": str,
    "data.max_batch_size": int,
    "data.max_length": int,
    "debug.nan_micro_batch": int,
}
SOURCE_KEYS = {"manifest": str, "weight": (int, float), "long_audio": str}
CHOICES = {
    "stage": STAGES,
    "optim.schedule": ("cosine", "linear", "constant"),
    "deepspeed.precision": ("auto", "fp32", "bf16"),
    "deepspeed.zero_stage": (0, 1, 2, 3),
    "output.wandb": ("offline", "online"),
}
#: logger key -> (the package it needs, how to install it)
LOGGERS = {
    "output.tensorboard": ("tensorboard", "pip install 'af2[train]'"),
    "output.wandb": ("wandb", "pip install 'af2[wandb]'"),
}


class ConfigError(errors.ConfigError, ValueError):
    """A bad config value; ``key`` is its dotted name (an af2.errors.ConfigError: exit status 2)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key '{key}': {message}")
        self.key = key


def merge(base: dict, override: Mapping, *, schema: Mapping | None = None, prefix: str = "") -> dict:
    """Deep-merge ``override`` into a copy of ``base``; with ``schema``, unknown keys raise."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        name = f"{prefix}{key}"
        if schema is not None and key not in schema:
            raise ConfigError(name, f"unknown key (known: {', '.join(sorted(schema))})")
        sub = schema.get(key) if schema is not None else None
        free = name == "model.overrides"  # AF2Config fields, checked by AF2Config itself
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value, schema=None if free else sub, prefix=f"{name}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_types(cfg: Mapping, schema: Mapping, prefix: str = "") -> None:
    for key, default in schema.items():
        name, value = f"{prefix}{key}", cfg[key]
        if isinstance(default, dict) and name != "model.overrides":
            if not isinstance(value, Mapping):
                raise ConfigError(name, f"expected a mapping, got {value!r}")
            _check_types(value, default, f"{name}.")
            continue
        want = TYPES.get(name, type(default))
        if value is None and (default is None or name in TYPES):
            continue
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            raise ConfigError(name, f"expected {getattr(want, '__name__', want)}, got {value!r}")
        if name in CHOICES and value not in CHOICES[name]:
            raise ConfigError(name, f"must be one of {list(CHOICES[name])}, got {value!r}")


def _positive(cfg: Mapping, *names: str, allow_zero: bool = False) -> None:
    for name in names:
        section, key = name.split(".")
        value = cfg[section][key]
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            raise ConfigError(name, f"must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _check_model(model: Mapping) -> None:
    """``model.preset`` is a known preset and ``model.overrides`` are AF2Config fields that build."""
    import dataclasses

    from af2.model.config import AF2Config

    try:
        AF2Config.preset(model["preset"])
    except ValueError as e:  # names the known presets
        raise ConfigError("model.preset", str(e)) from None
    fields = {f.name for f in dataclasses.fields(AF2Config)}
    for key in model["overrides"]:
        if key not in fields:
            raise ConfigError(f"model.overrides.{key}", f"not an AF2Config field (known: {', '.join(sorted(fields))})")
    try:
        AF2Config.preset(model["preset"], **model["overrides"])
    except (TypeError, ValueError) as e:
        raise ConfigError("model.overrides", str(e)) from None


def _check_loggers(output: Mapping) -> None:
    """Every logger asked for can be imported (checked without importing it)."""
    from af2._deps import missing

    for name, (package, install) in LOGGERS.items():
        value = output[name.split(".")[1]]
        if value and missing([package]):
            raise ConfigError(
                name,
                f"{value!r} asks for {package}, which is not installed: {install} "
                f"(or set {name}: {'false' if value is True else 'null'})",
            )


def validate(cfg: dict) -> dict:
    """Check types, ranges, budgets, loggers and data; returns ``cfg``. Raises :class:`ConfigError`."""
    if isinstance(cfg.get("output"), dict) and cfg["output"].get("wandb") is False:
        cfg["output"]["wandb"] = None  # YAML's `wandb: false` / `wandb: off`
    _check_types(cfg, SCHEMA)
    _check_loggers(cfg["output"])
    _positive(
        cfg,
        "data.max_windows",
        "data.max_windows_per_batch",
        "data.max_batch_size",
        "data.max_length",
        "clap.positives",
        "clap.batch_size",
        "clap.max_text_length",
        "optim.lr",
        "optim.grad_clip",
        "train.max_steps",
        "train.grad_accum",
        "train.keep_checkpoints",
    )
    _positive(
        cfg,
        "clap.negatives",
        "optim.warmup_steps",
        "train.checkpoint_every",
        "train.max_nonfinite",
        "train.feature_cache_mb",
        "data.num_workers",
        "optim.weight_decay",
        "optim.min_lr_ratio",
        allow_zero=True,
    )
    _check_model(cfg["model"])
    from training.clap import TEMPLATES

    if cfg["clap"]["positives"] > len(TEMPLATES):
        raise ConfigError(
            "clap.positives",
            f"{cfg['clap']['positives']} > {len(TEMPLATES)}, the number of caption "
            "templates (training/clap.py TEMPLATES) that make the positives",
        )
    data = cfg["data"]
    if data["max_windows_per_batch"] < data["max_windows"]:
        raise ConfigError(
            "data.max_windows_per_batch",
            f"{data['max_windows_per_batch']} cannot hold one sample of data.max_windows={data['max_windows']} windows",
        )
    if cfg["stage"] == "clap" and cfg["clap"]["batch_size"] * data["max_windows"] > data["max_windows_per_batch"]:
        raise ConfigError(
            "clap.batch_size",
            f"{cfg['clap']['batch_size']} samples x {data['max_windows']} windows "
            f"exceed data.max_windows_per_batch={data['max_windows_per_batch']}",
        )
    if cfg["stage"] == "clap" and cfg["clap"]["batch_size"] < 2:
        raise ConfigError("clap.batch_size", "a contrastive batch needs at least 2 samples")
    if cfg["optim"]["min_lr_ratio"] > 1:
        raise ConfigError("optim.min_lr_ratio", f"must be <= 1, got {cfg['optim']['min_lr_ratio']}")
    betas = cfg["optim"]["betas"]
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ConfigError("optim.betas", f"expected two numbers in [0, 1), got {betas!r}")
    if cfg["optim"]["warmup_steps"] > cfg["train"]["max_steps"]:
        raise ConfigError(
            "optim.warmup_steps", f"{cfg['optim']['warmup_steps']} > train.max_steps={cfg['train']['max_steps']}"
        )
    if not data["sources"]:
        raise ConfigError("data.sources", "no data: give at least one {manifest: ...}")
    for i, src in enumerate(data["sources"]):
        name = f"data.sources[{i}]"
        if not isinstance(src, Mapping) or "manifest" not in src:
            raise ConfigError(name, f"expected a mapping with a 'manifest', got {src!r}")
        for key, value in src.items():
            if key not in SOURCE_KEYS:
                raise ConfigError(f"{name}.{key}", f"unknown key (known: {', '.join(SOURCE_KEYS)})")
            if not isinstance(value, SOURCE_KEYS[key]) or isinstance(value, bool):
                raise ConfigError(f"{name}.{key}", f"wrong type: {value!r}")
        if not Path(src["manifest"]).is_file():
            raise ConfigError(f"{name}.manifest", f"no such file: {src['manifest']}")
        if src.get("weight", 1.0) <= 0:
            raise ConfigError(f"{name}.weight", f"must be > 0, got {src['weight']}")
        if src.get("long_audio", "any") not in ("any", "only", "exclude"):
            raise ConfigError(f"{name}.long_audio", f"must be any|only|exclude, got {src['long_audio']!r}")
    if cfg["init_from"] is not None and not Path(cfg["init_from"]).is_dir():
        raise ConfigError("init_from", f"no such directory: {cfg['init_from']}")
    return cfg


def bundled_configs() -> dict[str, Path]:
    """The configs shipped with the trainer: name ("pretrain") -> file (in the installed package)."""
    folder = Path(__file__).resolve().parent / "configs"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config_path(path: str | Path) -> Path:
    """``path`` if it is a file, else the shipped config it names ("pretrain", "pretrain.yaml" or
    "training/configs/pretrain.yaml"), so a wheel's user can start from them (``--config pretrain``)
    in any directory. Raises :class:`ConfigError`."""
    given = Path(path)
    if given.is_file():
        return given
    shipped = bundled_configs()
    name = given.name[:-5] if given.name.endswith(".yaml") else given.name
    # "pretrain", or the checkout's path "training/configs/pretrain.yaml" from another directory
    if name in shipped and (given.parent == Path(".") or given.parent.parts[-2:] == ("training", "configs")):
        return shipped[name]
    if given.is_dir():
        raise ConfigError("config", f"{path} is a directory, not a YAML file")
    raise ConfigError("config", f"no such file: {path} (shipped configs: {', '.join(shipped)})")


def load_config(path: str | Path | None = None, overrides: Mapping | None = None, *, check: bool = True) -> dict:
    """Defaults <- YAML file (or shipped config name, :func:`resolve_config_path`) <- ``overrides``;
    validated unless ``check=False``."""
    cfg = copy.deepcopy(SCHEMA)
    if path is not None:
        path = resolve_config_path(path)
        text = yaml.safe_load(path.read_text()) or {}
        if not isinstance(text, Mapping):
            raise ConfigError("<root>", f"{path} does not hold a mapping")
        cfg = merge(cfg, text, schema=SCHEMA)
    if overrides:
        cfg = merge(cfg, overrides, schema=SCHEMA)
    return validate(cfg) if check else cfg


def parse_overrides(items: list[str]) -> dict:
    """``["train.max_steps=5", "data.sources=[{manifest: m.jsonl}]"]`` -> nested dict (YAML values)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(item, "overrides are written key.sub=value")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out

"""AudioFlamingo2Config: the transformers configuration of an Audio Flamingo 2 model.

Sub-configs (transformers classes, serialised nested in ``config.json``):

- ``audio_config``             ``ClapAudioConfig`` of AF-CLAP's HTSAT audio encoder;
- ``audio_transformer_config`` :class:`AudioFlamingo2AudioTransformerConfig` (the audio transformation);
- ``text_config``              ``Qwen2Config`` of the language model;
- ``clap_text_config``         ``T5Config`` of AF-CLAP's text tower (None: no text tower).

The flat fields hold the log-mel front end (``sampling_rate`` ... ``window_seconds``), the gated
cross-attention blocks (``xattn_*``), AF2's special token ids, the window limits, the fused-op
switch and the front-end defaults of the processor (``audio_normalization``, ``official_format``).

Named configs: :meth:`AudioFlamingo2Config.preset` (``"af2-3b"``, ``"tiny"``, ``"demo"``). Unknown keys and
values of the wrong type raise (``ValueError`` / ``StrictDataclassFieldValidationError``).
The model's modules are built from the equivalent :class:`~af2.model.config.AF2Config`
(:meth:`AudioFlamingo2Config.to_af2_config`), so both describe the same sizes.
"""
# No `from __future__ import annotations`: the strict dataclass checks types from the live annotations.

import math
from typing import Any, Optional

from huggingface_hub.dataclasses import strict
from transformers import ClapAudioConfig, PreTrainedConfig, Qwen2Config, T5Config
from transformers.configuration_utils import SubConfigSpec
from transformers.generation.configuration_utils import GenerationConfig

from af2.model.config import STAGE_MAX_WINDOWS, AF2Config, AudioTransformerConfig, CLAPConfig, MelConfig, XattnConfig

#: Keyword arguments PreTrainedConfig itself consumes or that from_pretrained / to_dict pass back.
_BASE_KWARGS = {
    "torch_dtype",
    "num_labels",
    "name_or_path",
    "_name_or_path",
    "_commit_hash",
    "output_attentions",
    "attn_implementation",
    "experts_implementation",
    "per_layer_config",
    "return_unused_kwargs",
    "_attn_implementation_autoset",
}
#: Official normalisation of the audio level (peak to 1, int16 round trip), or None (as read).
AUDIO_NORMALIZATIONS = ("official", None)
#: Fields of AF2Config's MelConfig / XattnConfig and their flat names here.
_MEL_FIELDS = {
    "sample_rate": "sampling_rate",
    "n_fft": "n_fft",
    "hop_length": "hop_length",
    "n_mels": "n_mels",
    "f_min": "f_min",
    "f_max": "f_max",
    "window_seconds": "window_seconds",
}
_XATTN_FIELDS = {
    "every_n_layers": "xattn_every_n_layers",
    "heads": "xattn_heads",
    "dim_head": "xattn_dim_head",
    "ff_mult": "xattn_ff_mult",
    "only_attend_immediate_media": "xattn_only_attend_immediate_media",
}
_TOKEN_FIELDS = {
    "audio": "audio_token_id",
    "eoc": "eoc_token_id",
    "sep": "sep_token_id",
    "pad": "pad_token_id",
    "eos": "eos_token_id",
}


def _reject_unknown(cls, kwargs: dict) -> None:
    """Raise on keys that are neither fields of ``cls`` nor PreTrainedConfig's own; drop a
    serialised ``model_type`` (it must be the class's)."""
    cls_name = cls.__name__
    model_type = kwargs.pop("model_type", cls.model_type)
    if model_type != cls.model_type:
        raise ValueError(f"{cls_name}: model_type {model_type!r} is not {cls.model_type!r}")
    generation = set(GenerationConfig._get_default_generation_params())
    unknown = sorted(k for k in kwargs if k not in _BASE_KWARGS and k not in generation)
    if unknown:
        raise ValueError(f"{cls_name}: unknown keys {unknown}")


@strict
class AudioFlamingo2AudioTransformerConfig(PreTrainedConfig):
    """The audio transformation: ``layers`` post-LN self-attention layers of width = the HTSAT's,
    ``heads`` heads, FFN ``ffn_dim``, windowed RoPE on the first ``rotary_dim`` dims of each head
    (base ``rope_base``), LayerNorm eps ``eps``."""

    model_type = "audioflamingo2_audio_transformer"
    base_config_key = "audio_transformer_config"

    layers: int = 3
    heads: int = 8
    ffn_dim: int = 2048
    rotary_dim: int = 128
    rope_base: float | int = 4096.0
    eps: float = 1e-6
    dropout: float | int = 0.0

    def __post_init__(self, **kwargs):
        _reject_unknown(type(self), kwargs)
        super().__post_init__(**kwargs)


@strict
class AudioFlamingo2Config(PreTrainedConfig):
    """Audio Flamingo 2 (AF-CLAP -> audio transformation -> gated cross-attention into Qwen2).

    The defaults are the paper's af2-3b sizes; ``AudioFlamingo2Config.preset("tiny")`` is the
    test / main-job model. Build-time sources (``llm_path``, ``tokenizer_path``, ``clap_text_path``:
    local directories; ``tokenizer="tiny"``: the offline BPE) are cleared on save.
    """

    model_type = "audioflamingo2"
    sub_configs_defaults = {
        "audio_config": SubConfigSpec(config_class=ClapAudioConfig),
        "audio_transformer_config": SubConfigSpec(config_class=AudioFlamingo2AudioTransformerConfig),
        "text_config": SubConfigSpec(config_class=Qwen2Config),
        "clap_text_config": SubConfigSpec(config_class=T5Config, optional=True),
    }

    audio_config: dict | PreTrainedConfig | None = None
    audio_transformer_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    clap_text_config: dict | PreTrainedConfig | None = None
    preset_name: str = "custom"
    # log-mel front end
    sampling_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float | int = 50.0
    f_max: float | int = 8000.0
    window_seconds: float | int = 10.0
    # AF-CLAP heads
    clap_joint_dim: int = 512
    clap_logit_scale_init: float = math.log(1 / 0.07)
    clap_text_path: str | None = None
    # gated cross-attention
    xattn_every_n_layers: int = 1
    xattn_heads: int = 8
    xattn_dim_head: int = 64
    xattn_ff_mult: int = 4
    xattn_only_attend_immediate_media: bool = True
    # tokens
    llm_path: str | None = None
    tokenizer: str | None = None
    tokenizer_path: str | None = None
    audio_token_id: int | None = None
    eoc_token_id: int | None = None
    sep_token_id: int | None = None
    pad_token_id: int | None = None
    eos_token_id: int | None = None
    # windows, ops, front-end defaults
    max_windows: int = 30
    stage_max_windows: dict | None = None
    use_fused_ops: bool = True
    audio_normalization: str | None = "official"
    official_format: bool = False

    def __post_init__(self, **kwargs):
        _reject_unknown(type(self), kwargs)
        if self.stage_max_windows is None:
            self.stage_max_windows = dict(STAGE_MAX_WINDOWS)
        if self.audio_normalization not in AUDIO_NORMALIZATIONS:
            raise ValueError(
                f"AudioFlamingo2Config: audio_normalization must be one of {AUDIO_NORMALIZATIONS}, "
                f"got {self.audio_normalization!r}"
            )
        super().__post_init__(**kwargs)
        if self.audio_config.num_mel_bins != self.n_mels:
            raise ValueError(
                f"AudioFlamingo2Config: audio_config.num_mel_bins ({self.audio_config.num_mel_bins}) "
                f"!= n_mels ({self.n_mels})"
            )

    # -- AF2Config view ------------------------------------------------------------------------
    @classmethod
    def from_af2_config(cls, cfg: AF2Config) -> "AudioFlamingo2Config":
        """The same model described by an :class:`~af2.model.config.AF2Config` (e.g. the dataclass
        of a checkpoint written before this class existed)."""
        flat = {ours: getattr(cfg.mel, theirs) for theirs, ours in _MEL_FIELDS.items()}
        flat.update({ours: getattr(cfg.xattn, theirs) for theirs, ours in _XATTN_FIELDS.items()})
        flat.update({ours: cfg.token_ids.get(theirs) for theirs, ours in _TOKEN_FIELDS.items()})
        at = cfg.audio_transformer
        return cls(
            audio_config=dict(cfg.clap.audio),
            text_config=dict(cfg.llm),
            audio_transformer_config=dict(
                layers=at.layers,
                heads=at.heads,
                ffn_dim=at.ffn_dim,
                rotary_dim=at.rotary_dim,
                rope_base=at.rope_base,
                eps=at.eps,
                dropout=at.dropout,
            ),
            clap_text_config=dict(cfg.clap.text) if cfg.clap.text_tower else None,
            preset_name=cfg.name,
            clap_joint_dim=cfg.clap.joint_dim,
            clap_logit_scale_init=float(cfg.clap.logit_scale_init),
            clap_text_path=cfg.clap.text_path,
            llm_path=cfg.llm_path,
            tokenizer=cfg.tokenizer,
            tokenizer_path=cfg.tokenizer_path,
            max_windows=cfg.max_windows,
            stage_max_windows=dict(cfg.stage_max_windows),
            use_fused_ops=cfg.fused,
            audio_normalization=cfg.audio_normalization,
            official_format=cfg.official_format,
            **flat,
        )

    def to_af2_config(self) -> AF2Config:
        """The equivalent :class:`~af2.model.config.AF2Config` (what the modules are built from)."""
        at = self.audio_transformer_config
        text = self.clap_text_config
        return AF2Config(
            name=self.preset_name,
            mel=MelConfig(**{theirs: getattr(self, ours) for theirs, ours in _MEL_FIELDS.items()}),
            clap=CLAPConfig(
                audio=_kwargs(self.audio_config),
                text=_kwargs(text) if text is not None else {},
                joint_dim=self.clap_joint_dim,
                logit_scale_init=self.clap_logit_scale_init,
                text_tower=text is not None,
                text_path=self.clap_text_path,
            ),
            audio_transformer=AudioTransformerConfig(
                layers=at.layers,
                heads=at.heads,
                ffn_dim=at.ffn_dim,
                rotary_dim=at.rotary_dim,
                rope_base=float(at.rope_base),
                eps=at.eps,
                dropout=float(at.dropout),
            ),
            xattn=XattnConfig(**{theirs: getattr(self, ours) for theirs, ours in _XATTN_FIELDS.items()}),
            llm=_kwargs(self.text_config),
            llm_path=self.llm_path,
            tokenizer=self.tokenizer,
            tokenizer_path=self.tokenizer_path,
            token_ids=self.token_ids,
            max_windows=self.max_windows,
            stage_max_windows=dict(self.stage_max_windows),
            fused=self.use_fused_ops,
            audio_normalization=self.audio_normalization,
            official_format=self.official_format,
        )

    @classmethod
    def preset(cls, name: str, /, **overrides: Any) -> "AudioFlamingo2Config":
        """A named config (``"af2-3b"``, ``"tiny"``, ``"demo"``); keyword overrides replace fields of this class."""
        base = cls.from_af2_config(AF2Config.preset(name)).to_dict()
        base.pop("model_type", None)
        base.pop("transformers_version", None)
        base.update(overrides)
        return cls(**base)

    # -- conveniences the model and the processor read ------------------------------------------
    @property
    def token_ids(self) -> dict[str, int]:
        """``{"audio", "eoc", "sep", "pad", "eos"}`` -> id, for the ids that are set."""
        return {k: getattr(self, f) for k, f in _TOKEN_FIELDS.items() if getattr(self, f) is not None}

    def set_token_ids(self, ids: dict[str, int]) -> None:
        unknown = sorted(set(ids) - set(_TOKEN_FIELDS))
        if unknown:
            raise ValueError(f"unknown special tokens {unknown}; expected {sorted(_TOKEN_FIELDS)}")
        for key, value in ids.items():
            setattr(self, _TOKEN_FIELDS[key], int(value))

    @property
    def mel(self) -> MelConfig:
        return MelConfig(**{theirs: getattr(self, ours) for theirs, ours in _MEL_FIELDS.items()})

    @property
    def audio_transformer(self) -> AudioTransformerConfig:
        return self.to_af2_config().audio_transformer

    @property
    def audio_dim(self) -> int:
        return int(self.audio_config.hidden_size)

    @property
    def tokens_per_window(self) -> int:
        return self.to_af2_config().tokens_per_window

    def max_windows_for(self, stage: Optional[str] = None) -> int:
        """Max windows of a curriculum stage ("pretrain" 3, "sft" 9, "long" 30), or ``max_windows``."""
        if stage is None:
            return self.max_windows
        if stage not in self.stage_max_windows:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(self.stage_max_windows)}")
        return int(self.stage_max_windows[stage])


def _kwargs(config: PreTrainedConfig) -> dict:
    """A sub-config as the constructor kwargs that rebuild it (its diff to the defaults)."""
    d = config.to_diff_dict()
    for key in ("model_type", "transformers_version", "architectures", "dtype"):
        d.pop(key, None)
    return d


__all__ = ["AudioFlamingo2AudioTransformerConfig", "AudioFlamingo2Config"]

"""AF2Config: every size of an Audio Flamingo 2 model, serialisable to and from JSON.

Presets (:meth:`AF2Config.preset`):

``af2-3b``  the paper's model: AF-CLAP with HTSAT-large (64 tokens x 2048 per 10-s window) and a
            Flan-T5-large text encoder, a 3-layer audio transformation of width 2048 (8 heads of
            256, FFN 2048, RoPE 128 of 256, base 4096), Qwen2.5-3B with AF2's vocabulary of
            151,669 tokens, a gated cross-attention block before every decoder layer.
``tiny``    the same wiring at toy sizes (still 64 tokens per 10-s window, still AF2's mel front
            end), the tests' fixture: a forward pass on the CPU in well under a second. Its
            sizes are fixed, not tuned; tests may depend on them.
``demo``    the main job's model (``python -m training.demo``): tiny's sizes, tuned there
            (docs/experiments.md says what each choice changed). Tuning happens in this preset.

Sub-models are described by plain dicts of transformers config kwargs (``clap.audio`` ->
``ClapAudioConfig``, ``clap.text`` -> ``T5Config``, ``llm`` -> ``Qwen2Config``), so any
HTSAT / T5 / Qwen2 size can be described without code changes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

#: AF2's curriculum: stage name -> maximum number of 10-s windows (30 s, 1.5 min, 5 min).
STAGE_MAX_WINDOWS = {"pretrain": 3, "sft": 9, "long": 30}
#: All stage names :meth:`AudioFlamingo2.trainable_parameters` accepts ("clap" trains AF-CLAP).
from af2.stages import STAGES  # noqa: E402,F401  (re-exported: af2.model.STAGES)


@dataclass
class MelConfig:
    """AF2's log-mel front end: 16 kHz, n_fft = win = 1024, hop 160, 64 mels in 50-8000 Hz,
    10-s windows (1001 frames each)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8000.0
    window_seconds: float = 10.0


@dataclass
class CLAPConfig:
    """AF-CLAP: ``audio`` = ClapAudioConfig kwargs (HTSAT), ``text`` = T5Config kwargs (encoder);
    both towers project through 2-layer MLPs to ``joint_dim``. ``text_tower=False`` builds the
    audio side only (enough for AF2 inference). ``text_path``: a local T5 directory to load."""

    audio: dict = field(default_factory=dict)
    text: dict = field(default_factory=dict)
    joint_dim: int = 512
    logit_scale_init: float = math.log(1 / 0.07)
    text_tower: bool = True
    text_path: Optional[str] = None


@dataclass
class AudioTransformerConfig:
    """The audio transformation (width = the HTSAT width): post-LN self-attention layers with
    windowed RoPE on q and k over the flattened (window, token) index."""

    layers: int = 3
    heads: int = 8
    ffn_dim: int = 2048
    rotary_dim: int = 128
    rope_base: float = 4096.0
    eps: float = 1e-6
    dropout: float = 0.0


@dataclass
class XattnConfig:
    """Gated cross-attention blocks: one before every ``every_n_layers``-th decoder layer."""

    every_n_layers: int = 1
    heads: int = 8
    dim_head: int = 64
    ff_mult: int = 4
    only_attend_immediate_media: bool = True


@dataclass
class AF2Config:
    """The whole model. ``llm`` = Qwen2Config kwargs; ``llm_path`` / ``tokenizer_path``: local
    directories of a real Qwen2 checkpoint / tokenizer (loaded offline); ``tokenizer="tiny"``
    builds the small offline BPE of :func:`af2.text.tokens.tiny_tokenizer`. ``token_ids`` holds
    the ids of ``audio``, ``eoc``, ``sep``, ``pad``, ``eos`` (filled from the tokenizer).
    ``max_windows``: the default for inference; ``stage_max_windows``: per curriculum stage.
    ``fused``: af2's fused ops (True) or their eager twins (False). ``audio_normalization``
    (``"official"``: peak to 1 and an int16 round trip, as the released weights were trained; None:
    the level as read) and ``official_format`` (lower-cased questions) are the processor's defaults."""

    name: str = "custom"
    mel: MelConfig = field(default_factory=MelConfig)
    clap: CLAPConfig = field(default_factory=CLAPConfig)
    audio_transformer: AudioTransformerConfig = field(default_factory=AudioTransformerConfig)
    xattn: XattnConfig = field(default_factory=XattnConfig)
    llm: dict = field(default_factory=dict)
    llm_path: Optional[str] = None
    tokenizer: Optional[str] = None
    tokenizer_path: Optional[str] = None
    token_ids: dict = field(default_factory=dict)
    max_windows: int = 30
    stage_max_windows: dict = field(default_factory=lambda: dict(STAGE_MAX_WINDOWS))
    fused: bool = True
    audio_normalization: Optional[str] = None
    official_format: bool = False

    # -- derived sizes ----------------------------------------------------------------------
    @property
    def audio_dim(self) -> int:
        """HTSAT output width = audio-transformation width = xattn media width."""
        return int(self.clap.audio["hidden_size"])

    @property
    def tokens_per_window(self) -> int:
        """Dense tokens per 10-s window: the HTSAT's final (freq x time) grid, 8 x 8 = 64 at af2-3b."""
        a = self.clap.audio
        stride = a.get("patch_stride", [4, 4])
        stride = stride[0] if isinstance(stride, (list, tuple)) else stride
        side = a.get("spec_size", 256) // stride // 2 ** (len(a["depths"]) - 1)
        return side * side

    def max_windows_for(self, stage: Optional[str] = None) -> int:
        """Max windows of a curriculum stage ("pretrain" 3, "sft" 9, "long" 30), or the default."""
        if stage is None:
            return self.max_windows
        if stage not in self.stage_max_windows:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(self.stage_max_windows)}")
        return int(self.stage_max_windows[stage])

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AF2Config":
        d = copy.deepcopy(d)
        subs = {"mel": MelConfig, "clap": CLAPConfig, "audio_transformer": AudioTransformerConfig, "xattn": XattnConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"AF2Config: unknown fields {unknown}")
        for key, sub in subs.items():
            if key in d and isinstance(d[key], dict):
                d[key] = sub(**d[key])
        return cls(**d)

    def to_json(self, path: Optional[str | Path] = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "AF2Config":
        """From a JSON string or the path of a JSON file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls.from_dict(json.loads(text))

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def preset(cls, preset: str, /, **overrides: Any) -> "AF2Config":
        """``"af2-3b"``, ``"tiny"`` or ``"demo"``; keyword overrides replace top-level fields (``name`` too)."""
        if preset not in _PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(_PRESETS)}")
        cfg = _PRESETS[preset]()
        return dataclasses.replace(cfg, **overrides) if overrides else cfg


def _htsat(**kw) -> dict:
    """ClapAudioConfig kwargs of AF-CLAP's HTSAT (fusion on, as AF2 builds it), with overrides."""
    base = dict(
        patch_embeds_hidden_size=256,
        depths=[2, 2, 12, 2],
        num_attention_heads=[4, 8, 16, 32],
        hidden_size=2048,
        enable_fusion=True,
        fusion_type=None,
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
        patch_size=4,
        patch_stride=[4, 4],
        mlp_ratio=4.0,
        aff_block_r=4,
        qkv_bias=True,
        num_classes=527,
        layer_norm_eps=1e-5,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.1,
    )
    base.update(kw)
    return base


def _af2_3b() -> AF2Config:
    flan_t5_large = dict(
        vocab_size=32128,
        d_model=1024,
        d_kv=64,
        d_ff=2816,
        num_layers=24,
        num_heads=16,
        feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        tie_word_embeddings=False,
        is_encoder_decoder=False,
        use_cache=False,
    )
    qwen25_3b = dict(
        vocab_size=151669,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        use_sliding_window=False,
        hidden_act="silu",
        bos_token_id=151643,
        eos_token_id=151643,
    )
    return AF2Config(
        name="af2-3b",
        clap=CLAPConfig(audio=_htsat(), text=flan_t5_large),
        audio_transformer=AudioTransformerConfig(),
        xattn=XattnConfig(),
        llm=qwen25_3b,
        # Official ids after AF2's tokenizer additions to Qwen2.5 (len 151665 -> 151669).
        token_ids=dict(audio=151665, eoc=151666, sep=151668, pad=151643, eos=151643),
        audio_normalization="official",
        official_format=True,
    )


def _tiny() -> AF2Config:
    # HTSAT with 2 stages and a 16x16 patch: 256/16 = 16x16 patches -> 8x8 = 64 tokens per window.
    audio = _htsat(
        patch_embeds_hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[1, 2],
        hidden_size=32,
        patch_size=16,
        patch_stride=[16, 16],
        num_classes=8,
        drop_path_rate=0.0,
    )
    text = dict(
        vocab_size=128,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        tie_word_embeddings=False,
        is_encoder_decoder=False,
        use_cache=False,
    )
    llm = dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        use_sliding_window=False,
        hidden_act="silu",
    )
    return AF2Config(
        name="tiny",
        clap=CLAPConfig(audio=audio, text=text, joint_dim=16),
        audio_transformer=AudioTransformerConfig(layers=3, heads=4, ffn_dim=64, rotary_dim=8, rope_base=100.0),
        xattn=XattnConfig(heads=2, dim_head=16),
        llm=llm,
        tokenizer="tiny",
    )


def _demo() -> AF2Config:
    # The main job's model (training/demo.py). The RoPE base is scaled to the toy rotary dims:
    # with 4 frequencies, base 4096 leaves the token positions of a few windows almost unresolved
    # (temporal-order questions do not train); base 100 spans them (wavelengths 6 to 200 tokens).
    # 4 heads of 8 dims, all of them rotary: which sound is first / last is learned sooner and far
    # less seed-dependently than with 2 heads of 16, half rotary (docs/experiments.md).
    return dataclasses.replace(
        _tiny(),
        name="demo",
        audio_transformer=AudioTransformerConfig(layers=3, heads=4, ffn_dim=64, rotary_dim=8, rope_base=100.0),
    )


_PRESETS = {"af2-3b": _af2_3b, "tiny": _tiny, "demo": _demo}

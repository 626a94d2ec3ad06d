"""AudioFlamingo2ForConditionalGeneration: AF-CLAP -> audio transformation -> gated cross-attention
into Qwen2, as a transformers ``PreTrainedModel`` with ``GenerationMixin``.

Shapes (B batch, W windows, L = 160,000 samples, n = 64 tokens per window, D = AF-CLAP width,
S text length, V vocabulary):

    audio_windows (B, W, L), audio_window_mask (B, W)
      -> clap.dense_features       (B, W, n, D)   (or pass dense_features directly)
      -> audio_transformer         (B, W·n, D)
      -> media (B, 1, W·n, D), media mask (B, 1, W·n): one media item per sample, its `<audio>` token
    input_ids (B, S) -> Qwen2 with xattn.{i} before decoder layer i -> logits (B, S, V)

``forward`` takes the processor's / collator's keys (:data:`BATCH_KEYS`) and returns
:class:`AF2Output` (loss on the supervised labels only, logits, the KV cache when one is used).
``generate`` is transformers' (greedy, sampling, beam search, streamers, stop strings,
``GenerationConfig``); the audio path runs once per call and each block's media keys/values ride
on the KV cache (af2.model.generation). ``AudioFlamingo2`` is this class under its older name; its
older ``generate(audio, prompts)`` call (strings in, strings out) still works.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from af2.audio.windows import BatchedWindows
from af2.model import generation as gen
from af2.model.afclap import AFCLAP
from af2.model.audio_transformer import AudioTransformer
from af2.model.config import STAGES, AF2Config
from af2.model.configuration_af2 import AudioFlamingo2Config
from af2.model.generation import positions
from af2.model.llm import MEDIA_KWARG, MediaInputs, attach_xattn, build_llm, build_xattn
from af2.model.tokenizer import resolve_tokenizer
from af2.text.sample import IGNORE_INDEX
from af2.text.tokens import special_token_ids

#: Collator keys ``forward`` takes (the collator's other keys are bookkeeping).
BATCH_KEYS = ("input_ids", "attention_mask", "labels", "media_locations", "audio_windows", "audio_window_mask")
#: The config fields that name build-time sources; cleared in a saved config (the weights are in the files).
_BUILD_SOURCES = ("llm_path", "tokenizer", "tokenizer_path", "clap_text_path")


@dataclass
class AF2Output(CausalLMOutputWithPast):
    """loss: scalar (None without labels); logits: (B, S, V); cache: the KV cache (generation)."""


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not -100 (float32)."""
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)


class AudioFlamingo2PreTrainedModel(PreTrainedModel):
    config_class = AudioFlamingo2Config
    base_model_prefix = "af2"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Qwen2DecoderLayer", "GatedCrossAttentionBlock", "AudioSelfAttention"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's own initialisation of af2's modules (the one their constructors run; the
        transformers sub-models initialise themselves), zero gates for the xattn blocks and
        log(1/0.07) for AF-CLAP's logit scale. Runs on what a checkpoint did not provide."""
        from af2.nn import GatedCrossAttentionBlock

        if isinstance(module, GatedCrossAttentionBlock):
            module.attn_gate.zero_()
            module.ff_gate.zero_()
        elif isinstance(module, AFCLAP) and module.logit_scale is not None:
            module.logit_scale.fill_(float(self.config.clap_logit_scale_init))
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()


class AudioFlamingo2ForConditionalGeneration(AudioFlamingo2PreTrainedModel, GenerationMixin):
    """Audio Flamingo 2. Submodules: ``clap`` (AFCLAP), ``audio_transformer``, ``llm``
    (Qwen2ForCausalLM, keys as transformers'), ``xattn`` ({decoder layer: GatedCrossAttentionBlock}).

    Args:
        config: an :class:`AudioFlamingo2Config` (``AudioFlamingo2Config.preset("tiny")``) or an
            :class:`~af2.model.config.AF2Config` (converted).
        tokenizer: a transformers tokenizer with AF2's tokens; default from the config
            (``tokenizer_path`` / ``llm_path``, offline, or the tiny offline BPE); a model loaded
            with ``from_pretrained`` gets the tokenizer saved beside it.
    """

    def __init__(self, config: AudioFlamingo2Config | AF2Config, tokenizer=None):
        if isinstance(config, AF2Config):
            config = AudioFlamingo2Config.from_af2_config(config)
        config = copy.deepcopy(config)
        super().__init__(config)
        cfg = config.to_af2_config()
        self.tokenizer = (
            tokenizer if tokenizer is not None else resolve_tokenizer(cfg.tokenizer, cfg.tokenizer_path, cfg.llm_path)
        )
        if self.tokenizer is not None:
            config.set_token_ids(special_token_ids(self.tokenizer))
        self.clap = AFCLAP(cfg.clap, cfg.mel)
        self.audio_transformer = AudioTransformer(cfg.audio_dim, cfg.audio_transformer, fused=cfg.fused)
        self.llm = build_llm(cfg)
        if self.tokenizer is not None:
            if cfg.llm_path:  # AF2 resizes Qwen's embeddings to len(tokenizer) (151936 -> 151669)
                self.llm.resize_token_embeddings(len(self.tokenizer))
            elif len(self.tokenizer) > self.llm.config.vocab_size:
                raise ValueError(
                    f"tokenizer has {len(self.tokenizer)} tokens but the LLM's vocab_size is "
                    f"{self.llm.config.vocab_size}"
                )
        if cfg.llm_path:
            config.text_config = self.llm.config
        self.xattn = build_xattn(cfg, self.llm.config.hidden_size, self.llm.config.num_hidden_layers)
        self._hooks = attach_xattn(self.llm, self.xattn)
        if not any(p.is_meta for p in self.parameters()):
            self._mark_constructed_initialised()
        self.post_init()
        self.generation_config = gen.default_generation_config(config, self.generation_config)

    def _mark_constructed_initialised(self) -> None:
        """The constructors above already initialised every parameter (with the RNG stream of the
        seed the caller set): keep transformers' post_init from drawing them a second time."""
        for module in self.modules():
            module._is_hf_initialized = True

    # -- transformers plumbing -----------------------------------------------------------------
    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        """transformers' tied pairs plus AF-CLAP's T5 encoder, whose ``encoder.embed_tokens`` is
        its ``shared`` embedding (one tensor, stored once)."""
        tied = super().get_expanded_tied_weights_keys(all_submodels=all_submodels)
        if getattr(getattr(self, "clap", None), "text", None) is not None:
            tied["clap.text.encoder.embed_tokens.weight"] = "clap.text.shared.weight"
        return tied

    def get_input_embeddings(self) -> nn.Module:
        return self.llm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.llm.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.llm.get_output_embeddings()

    def use_fused_ops(self, fused: bool = True) -> None:
        """Switch the RoPE of the audio transformation and every xattn block between af2's fused
        ops (True) and their eager twins in af2.reference (False); the weights are shared."""
        self.config.use_fused_ops = fused
        self.audio_transformer.fused = fused
        for block in self.xattn.values():
            block.fused = fused

    # -- inputs ------------------------------------------------------------------------------
    @staticmethod
    def batch_inputs(batch: dict) -> dict:
        """The collator batch's keys that :meth:`forward` takes (:data:`BATCH_KEYS`)."""
        return {k: batch[k] for k in BATCH_KEYS if k in batch}

    @property
    def audio_token_id(self) -> int:
        if self.config.audio_token_id is None:
            raise RuntimeError("the model has no tokenizer and config.audio_token_id is not set")
        return int(self.config.audio_token_id)

    @property
    def processor(self):
        """An :class:`~af2.model.processing_af2.AudioFlamingo2Processor` for this model's config and tokenizer."""
        from af2.model.processing_af2 import AudioFlamingo2Processor

        if self.tokenizer is None:
            raise RuntimeError("the model has no tokenizer: build the processor with AudioFlamingo2Processor")
        return AudioFlamingo2Processor.from_config(self.config, tokenizer=self.tokenizer)

    def window_audio(
        self,
        waves: Sequence[torch.Tensor],
        *,
        max_windows: Optional[int] = None,
        stage: Optional[str] = None,
        names: Optional[Sequence[str]] = None,
    ) -> BatchedWindows:
        """1-D waveforms at 16 kHz, any lengths -> BatchedWindows (windows (B, W, L), mask (B, W),
        truncated (B,)) with at most ``max_windows`` (default: the stage's, else config.max_windows)
        windows each; longer audio is cut with a logged warning (af2.audio.windows). The level is
        not changed (the processor's feature extractor normalises)."""
        from af2.model.processing_af2 import AudioFlamingo2FeatureExtractor

        limit = max_windows if max_windows is not None else self.config.max_windows_for(stage)
        return AudioFlamingo2FeatureExtractor.from_model_config(self.config).windows(
            waves, max_windows=limit, names=names
        )

    # -- audio path --------------------------------------------------------------------------
    def encode_media(
        self,
        audio_windows: Optional[torch.Tensor] = None,
        audio_window_mask: Optional[torch.Tensor] = None,
        dense_features: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """audio_windows (B, W, L) or dense_features (B, W, n, D), audio_window_mask (B, W) ->
        media (B, 1, W·n, D) and media mask (B, 1, W·n) bool for the cross-attention."""
        if dense_features is None:
            if audio_windows is None:
                raise ValueError("encode_media needs audio_windows or dense_features")
            dense_features = self.clap.dense_features(audio_windows, audio_window_mask)
        B, W, n, _ = dense_features.shape
        if audio_window_mask is None:
            audio_window_mask = torch.ones(B, W, dtype=torch.bool, device=dense_features.device)
        dtype = self.audio_transformer.norm.weight.dtype
        media = self.audio_transformer(dense_features.to(dtype), audio_window_mask)
        mask = audio_window_mask.bool().repeat_interleave(n, dim=1)
        return media[:, None], mask[:, None]

    # -- forward -----------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        media_locations: Optional[torch.Tensor] = None,
        audio_windows: Optional[torch.Tensor] = None,
        audio_window_mask: Optional[torch.Tensor] = None,
        dense_features: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        cache=None,
        use_cache: Optional[bool] = None,
        logits_to_keep: int = 0,
        truncated: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> AF2Output:
        """input_ids (B, S); attention_mask (B, S') (True/1 on real tokens; S' >= S when a cache
        holds the first S' - S; None: all real); labels (B, S) with -100 where unsupervised; media_locations
        (B, S) bool (default: input_ids == `<audio>`); audio_windows (B, W, L) or dense_features
        (B, W, n, D), audio_window_mask (B, W). Without audio (and without media on the cache)
        the LLM runs unconditioned (every block is skipped). ``use_cache`` / ``cache``: the KV
        cache of generation; the media keys/values of the first call are kept on it."""
        use_cache = bool(use_cache) or cache is not None
        if use_cache and cache is None:
            cache = gen.new_cache(self.config)
        past = cache.get_seq_length() if use_cache else 0
        if attention_mask is None and not past:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        if position_ids is None:
            position_ids = (
                positions(attention_mask)[:, -input_ids.shape[1] :]
                if attention_mask is not None
                else torch.arange(past, past + input_ids.shape[1], device=input_ids.device).expand(
                    input_ids.shape[0], -1
                )
            )
        has_audio = audio_windows is not None or dense_features is not None
        if media_locations is None or media_locations.shape != input_ids.shape:
            media_locations = (
                input_ids == self.config.audio_token_id
                if self.config.audio_token_id is not None
                else torch.zeros_like(input_ids, dtype=torch.bool)
            )
        media_state = gen.media_state(cache) if use_cache else None
        media = media_mask = None
        if has_audio and media_state is None:
            media, media_mask = self.encode_media(audio_windows, audio_window_mask, dense_features)
            if media.shape[0] != input_ids.shape[0]:
                raise ValueError(f"{media.shape[0]} audio inputs for {input_ids.shape[0]} prompts")
            if use_cache:
                media_state = gen.attach_media(cache, self.xattn, media, media_mask)
        llm_kwargs = dict(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=attention_mask.long() if attention_mask is not None else None,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )
        if use_cache:
            llm_kwargs[gen.cache_keyword(self.llm)] = cache
        if media_state is not None:
            with gen.cached_media(self.xattn, media_state):
                out = self.llm(
                    **llm_kwargs, **{MEDIA_KWARG: MediaInputs(None, None, media_locations.bool(), cached=True)}
                )
        elif media is not None:
            out = self.llm(**llm_kwargs, **{MEDIA_KWARG: MediaInputs(media, media_mask, media_locations.bool())})
        else:
            out = self.llm(**llm_kwargs)
        loss = causal_lm_loss(out.logits, labels) if labels is not None else None
        return AF2Output(loss=loss, logits=out.logits, cache=cache if use_cache else None)

    # -- generation --------------------------------------------------------------------------
    def prepare_inputs_for_generation(self, input_ids, cache=None, is_first_iteration=False, **kwargs):
        inputs = super().prepare_inputs_for_generation(
            input_ids, cache=cache, is_first_iteration=is_first_iteration, **kwargs
        )
        if cache is not None and gen.media_state(cache) is not None:  # the audio ran on the first call
            for key in ("audio_windows", "audio_window_mask", "dense_features", "media_locations"):
                inputs.pop(key, None)
        return inputs

    def _reorder_cache(self, cache, beam_idx: torch.Tensor):
        """Beam search: reorder the KV cache and the media state of every block alike."""
        return gen.reorder_cache(cache, beam_idx)

    def encode_prompts(self, prompts: Sequence[str], *, audio: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> left-padded ``<audio>{prompt}<SEP>`` ids (B, P) and attention mask (B, P);
        ``audio=False``: ``{prompt}<SEP>`` (text-only prompts). As the processor; the prompts are
        used as they are (no official lower-casing)."""
        enc = self.processor(text=list(prompts), audio_token=audio, official_format=False)
        return enc["input_ids"], enc["attention_mask"]

    def encode_examples(self, prompts: Sequence[str], answers: Sequence[str]) -> dict:
        """Training text of (prompt, answer) pairs, as the collator makes it
        (``<audio>{prompt}<SEP>{answer}<|endofchunk|>{eos}``, af2.text.sample.SampleEncoder.encode):
        ``input_ids`` (B, S) right-padded, ``attention_mask`` (B, S) bool, and ``labels`` (B, S)
        with -100 on the prompt and the padding, so the loss is on the answer (and end tokens)."""
        enc = self.processor(text=list(prompts), answers=list(answers), official_format=False)
        return {k: enc[k] for k in ("input_ids", "attention_mask", "labels")}

    def generate(self, *args, **kwargs):
        """transformers' ``generate`` (``model.generate(**processor(...), max_new_tokens=...,
        num_beams=..., do_sample=..., streamer=...)``: prompt + new ids (B, P + N)).

        The older call is recognised and kept: ``generate(audio, prompts, *, max_new_tokens=64,
        do_sample=False, temperature=1.0, top_k=0, top_p=1.0, generator=None, audio_windows=None,
        audio_window_mask=None, dense_features=None, input_ids=None, attention_mask=None,
        max_windows=None, return_ids=False)`` with ``audio`` a list of 1-D 16-kHz waveforms and
        ``prompts`` strings returns the decoded answers (list of str), or with ``return_ids`` the
        new ids (B, N) padded with the pad id after a sequence stops (af2.model.generation)."""
        if gen.is_legacy_call(args, kwargs):
            return gen.generate_legacy(self, super().generate, *args, **kwargs)
        return super().generate(*args, **kwargs)

    # -- curriculum ----------------------------------------------------------------------------
    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        """The parameters trained in a curriculum stage (each once, tied weights included once):

        - ``"clap"``: AF-CLAP contrastive: HTSAT, T5 text encoder, both projections, logit scale;
        - ``"pretrain"`` / ``"long"``: audio transformation + xattn blocks + LLM input embeddings;
        - ``"sft"``: those plus the AF-CLAP audio encoder (HTSAT).
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {list(STAGES)}")
        if stage == "clap":
            if self.clap.text is None:
                raise RuntimeError("stage 'clap' needs the AF-CLAP text tower (config.clap.text_tower=True)")
            groups = [self.clap.audio, self.clap.audio_projection, self.clap.text, self.clap.text_projection]
            params = [p for g in groups for p in g.parameters()] + [self.clap.logit_scale]
        else:
            params = [
                *self.audio_transformer.parameters(),
                *self.xattn.parameters(),
                *self.llm.get_input_embeddings().parameters(),
            ]
            if stage == "sft":
                params += self.clap.audio_parameters()
        unique = {id(p): p for p in params}
        return list(unique.values())

    def set_stage(self, stage: str) -> list[nn.Parameter]:
        """Freeze everything but :meth:`trainable_parameters` (``requires_grad``) and return those.
        A frozen HTSAT then stays in eval mode under ``model.train()`` (see :meth:`train`)."""
        trainable = self.trainable_parameters(stage)
        keep = {id(p) for p in trainable}
        for p in self.parameters():
            p.requires_grad_(id(p) in keep)
        self.train(self.training)
        return trainable

    def train(self, mode: bool = True) -> "AudioFlamingo2ForConditionalGeneration":
        """As nn.Module.train, except that a fully frozen AF-CLAP audio encoder stays in eval mode:
        its BatchNorm keeps its running statistics and drop-path is off while it is not trained."""
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.clap.audio.parameters()):
            self.clap.audio.eval()
        return self

    # -- checkpoints -----------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | Path, *args, **kwargs) -> None:
        """transformers' save_pretrained (config.json with ``model_type``, generation_config.json,
        sharded safetensors with ``max_shard_size``) plus the processor (tokenizer, feature
        extractor, chat template) and a model card (README.md, unless one is there). The saved
        config is self-contained: the build-time sources (``llm_path``, ``tokenizer_path``, ...) are cleared."""
        from af2.model.hub import write_model_card

        saved = {k: getattr(self.config, k) for k in _BUILD_SOURCES}
        try:
            for k in _BUILD_SOURCES:
                setattr(self.config, k, None)
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            for k, v in saved.items():
                setattr(self.config, k, v)
        if self.tokenizer is not None and kwargs.get("is_main_process", True):
            self.processor.save_pretrained(save_directory)
        if kwargs.get("is_main_process", True):
            write_model_card(self, Path(save_directory))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, tokenizer=None, device=None, **kwargs):
        """transformers' from_pretrained (``dtype``, ``device_map``, ``local_files_only``, hub ids
        where a hub is reachable; built on the meta device, no random copy). The tokenizer saved
        beside the weights is loaded too (or pass ``tokenizer=``). A directory in af2's older
        format (config.json without ``model_type``, one model.safetensors, tokenizer/) loads as
        well. ``device``: where to put the model afterwards (the older keyword)."""
        from af2.model.hub import is_legacy_checkpoint, load_legacy, load_tokenizer_beside

        if "torch_dtype" in kwargs and "dtype" not in kwargs:
            kwargs["dtype"] = kwargs.pop("torch_dtype")
        if is_legacy_checkpoint(pretrained_model_name_or_path):
            model = load_legacy(cls, pretrained_model_name_or_path, tokenizer=tokenizer, **kwargs)
        else:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
            if tokenizer is None:
                tokenizer = load_tokenizer_beside(pretrained_model_name_or_path, kwargs)
            if tokenizer is not None:
                model.tokenizer = tokenizer
        return model.to(device) if device is not None else model


#: The older name of the model class (the same class).
AudioFlamingo2 = AudioFlamingo2ForConditionalGeneration

"""AudioFlamingo2: AF-CLAP -> audio transformation -> gated cross-attention into Qwen2.

Shapes (B batch, W windows, L = 160,000 samples, n = 64 tokens per window, D = AF-CLAP width,
S text length, V vocabulary):

    audio_windows (B, W, L), audio_window_mask (B, W)
      -> clap.dense_features       (B, W, n, D)   (or pass dense_features directly)
      -> audio_transformer         (B, W·n, D)
      -> media (B, 1, W·n, D), media mask (B, 1, W·n): one media item per sample, its `<audio>` token
    input_ids (B, S) -> Qwen2 with xattn.{i} before decoder layer i -> logits (B, S, V)

``forward`` takes the collator's keys (:data:`BATCH_KEYS`; ``model(**AudioFlamingo2.batch_inputs(batch))``)
and returns :class:`AF2Output` (loss on the supervised labels only, logits). ``generate`` runs a
batched greedy / sampling loop with the LLM's KV cache; the audio path runs once per call and each
block's media keys/values are cached (``GatedCrossAttentionBlock.cache_media``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from af2.data.collator import IGNORE_INDEX
from af2.data.windows import BatchedWindows, split_windows_batch
from af2.model.afclap import AFCLAP
from af2.model.audio_transformer import AudioTransformer
from af2.model.config import STAGES, AF2Config
from af2.model.generation import decode, positions
from af2.model.llm import MEDIA_KWARG, MediaInputs, attach_xattn, build_llm, build_xattn
from af2.model.tokenizer import resolve_tokenizer, special_token_ids

#: Collator keys ``forward`` takes (the collator's other keys are bookkeeping).
BATCH_KEYS = ("input_ids", "attention_mask", "labels", "media_locations", "audio_windows", "audio_window_mask")


@dataclass
class AF2Output:
    """loss: scalar (None without labels); logits: (B, S, V)."""

    loss: Optional[torch.Tensor]
    logits: torch.Tensor


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not -100 (float32)."""
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)


class AudioFlamingo2(nn.Module):
    """Audio Flamingo 2. Submodules: ``clap`` (AFCLAP), ``audio_transformer``, ``llm``
    (Qwen2ForCausalLM, keys as transformers'), ``xattn`` ({decoder layer: GatedCrossAttentionBlock}).

    Args:
        config: an :class:`AF2Config` (e.g. ``AF2Config.preset("tiny")``).
        tokenizer: a transformers tokenizer with AF2's tokens; default from the config
            (``tokenizer_path`` / ``llm_path``, offline, or the tiny offline BPE).
    """

    def __init__(self, config: AF2Config, tokenizer=None):
        super().__init__()
        config = copy.deepcopy(config)
        self.tokenizer = tokenizer if tokenizer is not None else resolve_tokenizer(
            config.tokenizer, config.tokenizer_path, config.llm_path)
        if self.tokenizer is not None:
            config.token_ids = special_token_ids(self.tokenizer)
        self.clap = AFCLAP(config.clap, config.mel)
        self.audio_transformer = AudioTransformer(config.audio_dim, config.audio_transformer, fused=config.fused)
        self.llm = build_llm(config)
        if self.tokenizer is not None:
            if config.llm_path:  # AF2 resizes Qwen's embeddings to len(tokenizer) (151936 -> 151669)
                self.llm.resize_token_embeddings(len(self.tokenizer))
            elif len(self.tokenizer) > self.llm.config.vocab_size:
                raise ValueError(f"tokenizer has {len(self.tokenizer)} tokens but the LLM's vocab_size is "
                                 f"{self.llm.config.vocab_size}")
        if config.llm_path:
            config.llm = self.llm.config.to_diff_dict()
        self.xattn = build_xattn(config, self.llm.config.hidden_size, self.llm.config.num_hidden_layers)
        self._hooks = attach_xattn(self.llm, self.xattn)
        self.config = config

    def use_fused_ops(self, fused: bool = True) -> None:
        """Switch the RoPE of the audio transformation and every xattn block between af2's fused
        ops (True) and their eager twins in af2.reference (False); the weights are shared."""
        self.config.fused = fused
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
        if "audio" not in self.config.token_ids:
            raise RuntimeError("the model has no tokenizer and config.token_ids lacks 'audio'")
        return int(self.config.token_ids["audio"])

    def window_audio(self, waves: Sequence[torch.Tensor], *, max_windows: Optional[int] = None,
                     stage: Optional[str] = None, names: Optional[Sequence[str]] = None) -> BatchedWindows:
        """1-D waveforms at 16 kHz, any lengths -> BatchedWindows (windows (B, W, L), mask (B, W),
        truncated (B,)) with at most ``max_windows`` (default: the stage's, else config.max_windows)
        windows each; longer audio is cut with a logged warning (af2.data.windows)."""
        limit = max_windows if max_windows is not None else self.config.max_windows_for(stage)
        mel = self.config.mel
        return split_windows_batch(list(waves), sample_rate=mel.sample_rate, window_seconds=mel.window_seconds,
                                   max_windows=limit, names=names)

    # -- audio path --------------------------------------------------------------------------
    def encode_media(self, audio_windows: Optional[torch.Tensor] = None,
                     audio_window_mask: Optional[torch.Tensor] = None,
                     dense_features: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
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

    # -- training / scoring ------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, media_locations: Optional[torch.Tensor] = None,
                audio_windows: Optional[torch.Tensor] = None, audio_window_mask: Optional[torch.Tensor] = None,
                dense_features: Optional[torch.Tensor] = None) -> AF2Output:
        """input_ids (B, S); attention_mask (B, S) (True/1 on real tokens); labels (B, S) with
        -100 where unsupervised; media_locations (B, S) bool (default: input_ids == `<audio>`);
        audio_windows (B, W, L) or dense_features (B, W, n, D), audio_window_mask (B, W).
        Without audio the LLM runs unconditioned (every block is skipped)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        extra = {}
        if audio_windows is not None or dense_features is not None:
            media, media_mask = self.encode_media(audio_windows, audio_window_mask, dense_features)
            if media_locations is None:
                media_locations = input_ids == self.audio_token_id
            extra[MEDIA_KWARG] = MediaInputs(media, media_mask, media_locations.bool())
        out = self.llm(input_ids=input_ids, attention_mask=attention_mask.long(),
                       position_ids=positions(attention_mask), use_cache=False, **extra)
        loss = causal_lm_loss(out.logits, labels) if labels is not None else None
        return AF2Output(loss=loss, logits=out.logits)

    # -- generation --------------------------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[str], *, audio: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> left-padded ``<audio>{prompt}<SEP>`` ids (B, P) and attention mask (B, P);
        ``audio=False``: ``{prompt}<SEP>`` (text-only prompts)."""
        if self.tokenizer is None:
            raise RuntimeError("encode_prompts needs a tokenizer")
        t = self.config.token_ids
        head = [t["audio"]] if audio else []
        rows = [[*head, *self.tokenizer(p, add_special_tokens=False)["input_ids"], t["sep"]] for p in prompts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), t["pad"], dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = True
        return ids, mask

    def encode_examples(self, prompts: Sequence[str], answers: Sequence[str]) -> dict:
        """Training text of (prompt, answer) pairs, as the collator makes it
        (``<audio>{prompt}<SEP>{answer}<|endofchunk|>{eos}``, af2.data.collator.AF2Collator.encode):
        ``input_ids`` (B, S) right-padded, ``attention_mask`` (B, S) bool, and ``labels`` (B, S)
        with -100 on the prompt and the padding, so the loss is on the answer (and end tokens)."""
        if self.tokenizer is None:
            raise RuntimeError("encode_examples needs a tokenizer")
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts for {len(answers)} answers")
        from af2.data.collator import AF2Collator

        collator = AF2Collator(self.tokenizer, max_windows=self.config.max_windows_for(None))
        rows = [collator.encode(p, a) for p, a in zip(prompts, answers)]
        width = max(len(ids) for ids, _ in rows)
        out = {"input_ids": torch.full((len(rows), width), collator.pad_id, dtype=torch.long),
               "attention_mask": torch.zeros(len(rows), width, dtype=torch.bool),
               "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)}
        for i, (ids, labels) in enumerate(rows):
            out["input_ids"][i, :len(ids)] = torch.tensor(ids)
            out["attention_mask"][i, :len(ids)] = True
            out["labels"][i, :len(labels)] = torch.tensor(labels)
        return out

    @torch.no_grad()
    def generate(self, audio: Optional[Sequence[torch.Tensor]] = None, prompts: Sequence[str] | str = (), *,
                 max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, generator: Optional[torch.Generator] = None,
                 audio_windows: Optional[torch.Tensor] = None, audio_window_mask: Optional[torch.Tensor] = None,
                 dense_features: Optional[torch.Tensor] = None, input_ids: Optional[torch.Tensor] = None,
                 attention_mask: Optional[torch.Tensor] = None, max_windows: Optional[int] = None,
                 return_ids: bool = False):
        """Answer ``prompts`` about ``audio`` (a list of 1-D 16-kHz waveforms, windowed here), or
        about ``audio_windows``/``dense_features`` (+ ``audio_window_mask``), or, with none of
        them, text-only prompts (``{prompt}<SEP>``, no `<audio>` token; the LLM runs without the
        xattn blocks, as ``forward`` does without audio). Prompts are strings, or
        ``input_ids``/``attention_mask`` already left-padded. Stops at ``<|endofchunk|>`` or eos.
        The `<audio>` token is never generated. Returns the decoded answers (list of str), or with
        ``return_ids`` the new ids (B, N) padded with the pad id after a sequence stops."""
        if isinstance(prompts, str):
            prompts = [prompts]
        device = next(self.parameters()).device
        if audio is not None:
            if isinstance(audio, torch.Tensor):                  # one wave (T,) or a stack (B, T)
                audio = [audio] if audio.dim() == 1 else list(audio)
            win = self.window_audio(audio, max_windows=max_windows)
            audio_windows, audio_window_mask = win.windows.to(device), win.mask.to(device)
        has_media = audio_windows is not None or dense_features is not None
        if input_ids is None:
            input_ids, attention_mask = self.encode_prompts(prompts, audio=has_media)
        elif attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device).long()
        if has_media:
            media, media_mask = self.encode_media(audio_windows, audio_window_mask, dense_features)
            if media.shape[0] != input_ids.shape[0]:
                raise ValueError(f"{media.shape[0]} audio inputs for {input_ids.shape[0]} prompts")
            for block in self.xattn.values():
                block.cache_media(media, media_mask)
        try:
            new = decode(self.llm, input_ids, attention_mask, self.config.token_ids, max_new_tokens,
                         do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                         media=has_media)
        finally:
            for block in self.xattn.values():
                block.clear_cache()
        if return_ids:
            return new
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

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
            params = [*self.audio_transformer.parameters(), *self.xattn.parameters(),
                      *self.llm.get_input_embeddings().parameters()]
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

    def train(self, mode: bool = True) -> "AudioFlamingo2":
        """As nn.Module.train, except that a fully frozen AF-CLAP audio encoder stays in eval mode:
        its BatchNorm keeps its running statistics and drop-path is off while it is not trained."""
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.clap.audio.parameters()):
            self.clap.audio.eval()
        return self

    # -- checkpoints -----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + model.safetensors (+ tokenizer/); see af2.model.checkpoint."""
        from af2.model.checkpoint import save_pretrained

        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kw) -> "AudioFlamingo2":
        from af2.model.checkpoint import load_pretrained

        return load_pretrained(cls, directory, **kw)

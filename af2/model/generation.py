"""Generation plumbing of AudioFlamingo2ForConditionalGeneration on top of transformers' GenerationMixin.

Media state: on the first forward of a ``generate`` call the audio path runs once and each xattn
block's media keys/values (``GatedCrossAttentionBlock.cache_media``: keys, values, per-item token
counts, padding mask, the count of `<audio>` tokens seen) are kept on the KV cache object
(attribute :data:`MEDIA_STATE`). Every later step runs only the new token through the LLM, with
the blocks reading that state (:func:`cached_media`); beam search reorders it with the KV cache
(:func:`reorder_cache`), so a beam that moves to another row takes its media along.

Defaults (:func:`default_generation_config`): stop at ``<|endofchunk|>`` or eos (the official
AF2 code stops at eos only), pad with the pad id, `<audio>` is never generated (suppressed).

The older call ``model.generate(audio, prompts, ...)`` (strings in, strings or new ids out) is
:func:`generate_legacy`; it builds the inputs with the model's processor and runs the same
GenerationMixin.generate.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Optional, Sequence

import torch

MEDIA_STATE = "af2_media_state"
_STATE_TENSORS = ("k", "v", "counts", "pad", "seen")


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """position_ids (B, S) counting real tokens only, so left padding does not shift positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def default_generation_config(config, base=None):
    """A GenerationConfig for AF2: eos = [``<|endofchunk|>``, eos], pad, `<audio>` suppressed,
    greedy, 64 new tokens (``base``'s other settings kept)."""
    import copy

    from transformers import GenerationConfig

    g = copy.deepcopy(base) if base is not None else GenerationConfig()
    ids = config.token_ids
    stop = sorted({ids[k] for k in ("eoc", "eos") if k in ids})
    if stop:
        g.eos_token_id = stop
    if "pad" in ids:
        g.pad_token_id = ids["pad"]
    if "audio" in ids:
        g.suppress_tokens = [ids["audio"]]
    g.bos_token_id = None
    g.max_new_tokens = 64 if g.max_new_tokens is None else g.max_new_tokens
    return g


def new_cache(config):
    """An empty KV cache for the model's text config."""
    from transformers import DynamicCache

    return DynamicCache(config=config.get_text_config(decoder=True))


@functools.lru_cache(maxsize=None)
def _cache_keyword(llm_type: type) -> str:
    """transformers >= 5.2x calls the KV cache ``cache``; earlier versions ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(llm_type.forward).parameters else "past_key_values"


def cache_keyword(llm) -> str:
    return _cache_keyword(type(llm))


def media_state(cache) -> Optional[dict]:
    """The per-block media state kept on ``cache`` ({block name: state}), or None."""
    return getattr(cache, MEDIA_STATE, None) if cache is not None else None


def attach_media(cache, blocks, media: torch.Tensor, media_mask: torch.Tensor) -> dict:
    """Compute every block's media keys/values once and keep them on ``cache``."""
    state = {}
    for name, block in blocks.items():
        block.cache_media(media, media_mask)
        state[name] = block._cache
        block.clear_cache()
    setattr(cache, MEDIA_STATE, state)
    return state


@contextlib.contextmanager
def cached_media(blocks, state: dict):
    """Inside, each block reads (and advances the `<audio>` count of) its state from ``state``."""
    try:
        for name, block in blocks.items():
            block._cache = state[name]
        yield
    finally:
        for block in blocks.values():
            block.clear_cache()


def _index_state(state: dict, fn) -> None:
    for block_state in state.values():
        for key in _STATE_TENSORS:
            if block_state.get(key) is not None:
                block_state[key] = fn(block_state[key])


def reorder_cache(cache, beam_idx: torch.Tensor):
    """Beam search's reordering of the rows of the KV cache and of the media state alike."""
    cache.reorder_cache(beam_idx)
    state = media_state(cache)
    if state is not None:
        _index_state(state, lambda t: t.index_select(0, beam_idx.to(t.device)))
    return cache


# -- the older call -------------------------------------------------------------------------------
_LEGACY_KEYWORDS = {"prompts", "return_ids", "max_windows", "generator", "audio"}


def is_legacy_call(args: tuple, kwargs: dict) -> bool:
    """``generate(audio, prompts, ...)``: waveforms first (a list or a float tensor), prompts as
    strings, or one of the older keywords."""
    if _LEGACY_KEYWORDS & set(kwargs):
        return True
    if len(args) >= 2:
        return True
    if args:
        first = args[0]
        return isinstance(first, (list, tuple)) or (isinstance(first, torch.Tensor) and first.is_floating_point())
    return False


@contextlib.contextmanager
def _rng_of(generator: Optional[torch.Generator], device: torch.device):
    """Sampling draws from the global RNG: run it from ``generator``'s state and advance nothing else."""
    if generator is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if generator.device.type == "cuda":
            torch.cuda.set_rng_state(generator.get_state(), generator.device)
        else:
            torch.set_rng_state(generator.get_state())
        yield


def generate_legacy(
    model,
    hf_generate,
    audio: Optional[Sequence[torch.Tensor]] = None,
    prompts: Sequence[str] | str = (),
    *,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: Optional[torch.Generator] = None,
    audio_windows: Optional[torch.Tensor] = None,
    audio_window_mask: Optional[torch.Tensor] = None,
    dense_features: Optional[torch.Tensor] = None,
    input_ids: Optional[torch.Tensor] = None,
    attention_mask: Optional[torch.Tensor] = None,
    max_windows: Optional[int] = None,
    return_ids: bool = False,
    **generate_kwargs,
):
    """Answer ``prompts`` about ``audio`` (1-D 16-kHz waveforms, windowed here, level unchanged),
    or about ``audio_windows``/``dense_features`` (+ ``audio_window_mask``), or, with none of
    them, text-only prompts (``{prompt}<SEP>``: the LLM runs without the xattn blocks). Prompts
    are strings, or ``input_ids``/``attention_mask`` already left-padded. Returns the decoded
    answers, or with ``return_ids`` the new ids (B, N <= max_new_tokens) padded with the pad id."""
    if isinstance(prompts, str):
        prompts = [prompts]
    device = next(model.parameters()).device
    if audio is not None:
        if isinstance(audio, torch.Tensor):  # one wave (T,) or a stack (B, T)
            audio = [audio] if audio.dim() == 1 else list(audio)
        win = model.window_audio(audio, max_windows=max_windows)
        audio_windows, audio_window_mask = win.windows.to(device), win.mask.to(device)
    has_media = audio_windows is not None or dense_features is not None
    if input_ids is None:
        input_ids, attention_mask = model.encode_prompts(prompts, audio=has_media)
    elif attention_mask is None:
        attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device).long()
    extra = {
        k: v
        for k, v in dict(
            audio_windows=audio_windows, audio_window_mask=audio_window_mask, dense_features=dense_features
        ).items()
        if v is not None
    }
    if has_media:
        rows = (dense_features if dense_features is not None else audio_windows).shape[0]
        if rows != input_ids.shape[0]:
            raise ValueError(f"{rows} audio inputs for {input_ids.shape[0]} prompts")
    sampling = (
        dict(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p) if do_sample else dict(do_sample=False)
    )
    with _rng_of(generator if do_sample else None, device):
        out = hf_generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            **sampling,
            **extra,
            **generate_kwargs,
        )
    new = out[:, input_ids.shape[1] :]
    if return_ids:
        return new
    return model.tokenizer.batch_decode(new, skip_special_tokens=True)

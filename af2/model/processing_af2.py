"""AudioFlamingo2Processor: audio front end + tokenizer + AF2's prompt format, as a transformers processor.

Feature extractor (:class:`AudioFlamingo2FeatureExtractor`): each audio (a path in any format
soundfile reads, or an array / tensor: (T,) mono or (channels, T)) -> mono (channel mean) ->
16 kHz (soxr) -> the official level normalisation (``normalize="official"``: peak to 1, then a
round trip through int16, ``x -> trunc(clip(x, -1, 1) * 32767) / 32767``, as the released weights
were trained; all-zero audio stays zero; ``normalize=None``: the level as read) -> 10-s windows,
at most ``max_windows`` (af2.audio.windows). Output: ``audio_windows`` (B, W, L), ``audio_window_mask``
(B, W) bool, ``truncated`` (B,) bool. The log-mel front end stays in the model (af2.model.mel).

Text: the official format ``<audio>{prompt}<SEP>`` (a prompt for ``generate``, left-padded), or
with ``answers`` the training format ``<audio>{prompt}<SEP>{answer}<|endofchunk|>{eos}`` with
``labels`` on the answer (right-padded; af2.text.sample, as the data collator). ``official_format=True`` lower-cases
the question, as the official inference does. The chat template renders the same strings from a
conversation (:meth:`AudioFlamingo2Processor.apply_chat_template`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from transformers import BatchFeature
from transformers.feature_extraction_utils import FeatureExtractionMixin
from transformers.processing_utils import ProcessorMixin

from af2.audio.windows import BatchedWindows, split_windows_batch
from af2.text.sample import IGNORE_INDEX, SampleEncoder
from af2.text.tokens import AUDIO_TOKEN, EOC_TOKEN, SEP_TOKEN, token_id

#: Stand-in for "the extractor's / processor's own default" in call keywords.
_DEFAULT = "default"

#: Jinja chat template: a user turn -> ``<audio>{text}<SEP>`` (``<audio>`` when it holds an audio
#: part, or a plain string), an assistant turn -> ``{text}<|endofchunk|>{eos}``; with
#: ``official_format`` the user's text is lower-cased. ``add_generation_prompt`` adds nothing
#: (a prompt already ends at ``<SEP>``).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}"
    "{%- set text = message['content'] -%}{%- set has_audio = true -%}"
    "{%- else -%}"
    "{%- set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}"
    "{%- set has_audio = message['content'] | selectattr('type', 'equalto', 'audio') | list | length > 0 -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if has_audio -%}" + AUDIO_TOKEN + "{%- endif -%}"
    "{{ text | lower if official_format else text }}" + SEP_TOKEN + "{%- elif message['role'] == 'assistant' -%}"
    "{{ text }}" + EOC_TOKEN + "{{ eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


def official_level(wave: np.ndarray) -> np.ndarray:
    """The official level normalisation of a float waveform: peak to 1 (silence stays zero), then
    the int16 round trip (clip to [-1, 1], x 32767, truncate, / 32767). float32 out."""
    x = np.asarray(wave, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x / np.float32(peak)
    q = (np.clip(x, -1.0, 1.0) * np.float32(32767.0)).astype(np.int16)
    return (q / 32767.0).astype(np.float32)


class AudioFlamingo2FeatureExtractor(FeatureExtractionMixin):
    """Audio -> AF2's 10-s windows (see the module doc). ``sampling_rate``: the model's (16 kHz);
    ``window_seconds``: 10; ``max_windows``: the default limit; ``normalize``: ``"official"`` or None."""

    model_input_names = ["audio_windows", "audio_window_mask"]

    def __init__(
        self,
        sampling_rate: int = 16000,
        window_seconds: float = 10.0,
        max_windows: int = 30,
        normalize: Optional[str] = "official",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalize not in ("official", None):
            raise ValueError(f"normalize must be 'official' or None, got {normalize!r}")
        self.sampling_rate = int(sampling_rate)
        self.window_seconds = float(window_seconds)
        self.max_windows = int(max_windows)
        self.normalize = normalize

    @classmethod
    def from_model_config(cls, config) -> "AudioFlamingo2FeatureExtractor":
        """The front end of an :class:`~af2.model.configuration_af2.AudioFlamingo2Config`."""
        return cls(
            sampling_rate=config.sampling_rate,
            window_seconds=config.window_seconds,
            max_windows=config.max_windows,
            normalize=config.audio_normalization,
        )

    # -- one audio ------------------------------------------------------------------------------
    def load(self, audio: Any, sampling_rate: Optional[int] = None) -> torch.Tensor:
        """A path, an array or a tensor ((T,) or (channels, T)) -> (T',) float32 mono at the model's rate."""
        if isinstance(audio, (str, os.PathLike)):
            from af2.audio.io import read_audio

            return read_audio(Path(audio), target_sr=self.sampling_rate)
        x = audio.detach().cpu().float().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
        if x.ndim == 2:
            x = x.mean(axis=0)
        if x.ndim != 1:
            raise ValueError(f"audio must be (T,) or (channels, T), got shape {tuple(x.shape)}")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise ValueError("audio holds NaN or infinite samples")
        rate = self.sampling_rate if sampling_rate is None else int(sampling_rate)
        if rate != self.sampling_rate:
            import soxr

            x = soxr.resample(x, rate, self.sampling_rate, quality="HQ").astype(np.float32, copy=False)
        return torch.from_numpy(np.ascontiguousarray(x))

    def prepare(
        self, audio: Any, sampling_rate: Optional[int] = None, normalize: Optional[str] = _DEFAULT
    ) -> torch.Tensor:
        """:meth:`load`, then the level normalisation (``normalize``; default: the extractor's)."""
        wave = self.load(audio, sampling_rate)
        mode = self.normalize if normalize == _DEFAULT else normalize
        if mode == "official":
            return torch.from_numpy(official_level(wave.numpy()))
        if mode is not None:
            raise ValueError(f"normalize must be 'official' or None, got {mode!r}")
        return wave

    # -- a batch --------------------------------------------------------------------------------
    def windows(
        self, waves: Sequence[torch.Tensor], *, max_windows: Optional[int] = None, names: Optional[Sequence[str]] = None
    ) -> BatchedWindows:
        """Waveforms at the model's rate (level as given) -> BatchedWindows (windows (B, W, L),
        mask (B, W), num_windows (B,), truncated (B,)); cut audio logs a warning."""
        return split_windows_batch(
            list(waves),
            sample_rate=self.sampling_rate,
            window_seconds=self.window_seconds,
            max_windows=self.max_windows if max_windows is None else int(max_windows),
            names=names,
        )

    def __call__(
        self,
        audio: Any,
        sampling_rate: Optional[int] = None,
        normalize: Optional[str] = _DEFAULT,
        max_windows: Optional[int] = None,
        return_tensors: Optional[str] = "pt",
        **kwargs,
    ) -> BatchFeature:
        """One audio or a list -> ``audio_windows`` (B, W, L), ``audio_window_mask`` (B, W), ``truncated`` (B,)."""
        if return_tensors not in ("pt", None):
            raise ValueError(
                f"{type(self).__name__} returns torch tensors only (return_tensors='pt'), got {return_tensors!r}"
            )
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keywords {sorted(kwargs)}")
        items = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        names = [str(a) if isinstance(a, (str, os.PathLike)) else f"audio {i}" for i, a in enumerate(items)]
        waves = [self.prepare(a, sampling_rate, normalize) for a in items]
        win = self.windows(waves, max_windows=max_windows, names=names)
        return BatchFeature({"audio_windows": win.windows, "audio_window_mask": win.mask, "truncated": win.truncated})


class AudioFlamingo2Processor(ProcessorMixin):
    """Feature extractor + tokenizer + AF2's prompt format (see the module doc).

    ``processor(text=..., audio=..., return_tensors="pt")`` -> everything ``generate`` / ``forward``
    take; ``processor.batch_decode(ids)`` drops the special tokens.
    """

    def __init__(
        self, feature_extractor=None, tokenizer=None, chat_template: Optional[str] = None, official_format: bool = False
    ):
        self.official_format = bool(official_format)
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template or CHAT_TEMPLATE)

    @classmethod
    def from_config(cls, config, tokenizer=None) -> "AudioFlamingo2Processor":
        """The processor of a model config: its tokenizer (``tokenizer_path`` / ``llm_path`` /
        ``"tiny"``, unless given) and its front-end settings."""
        from af2.model.tokenizer import resolve_tokenizer

        if tokenizer is None:
            tokenizer = resolve_tokenizer(config.tokenizer, config.tokenizer_path, config.llm_path)
        if tokenizer is None:
            raise ValueError("the config names no tokenizer (tokenizer_path, llm_path or tokenizer='tiny'); pass one")
        return cls(
            AudioFlamingo2FeatureExtractor.from_model_config(config), tokenizer, official_format=config.official_format
        )

    # -- token ids ------------------------------------------------------------------------------
    def _id(self, token: str) -> int:
        return token_id(self.tokenizer, token)

    def _question(self, prompt: str, official_format: bool) -> str:
        return prompt.lower() if official_format else prompt

    def _prompt_ids(self, text: str, audio_token: bool, official_format: bool) -> list[int]:
        if SEP_TOKEN in text:  # already in AF2's format (a chat template's output)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        head = [self._id(AUDIO_TOKEN)] if audio_token else []
        body = self.tokenizer(self._question(text, official_format), add_special_tokens=False)["input_ids"]
        return [*head, *body, self._id(SEP_TOKEN)]

    # -- call -----------------------------------------------------------------------------------
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        audio: Any = None,
        *,
        answers: Optional[Sequence[str]] = None,
        sampling_rate: Optional[int] = None,
        normalize: Optional[str] = _DEFAULT,
        max_windows: Optional[int] = None,
        official_format: Optional[bool] = None,
        audio_token: Optional[bool] = None,
        return_tensors: Optional[str] = "pt",
        **kwargs,
    ) -> BatchFeature:
        """text: prompts (``<audio>{prompt}<SEP>`` is built) or strings already holding ``<SEP>``
        (used as they are); audio: one per prompt (paths, arrays or tensors); answers: the
        training format with ``labels``. ``audio_token=False``: text-only prompts
        (``{prompt}<SEP>``, no ``<audio>``). Returns ``input_ids`` /
        ``attention_mask`` (B, S) (left-padded prompts, right-padded training text), ``labels``
        with answers, and the feature extractor's ``audio_windows``, ``audio_window_mask``, ``truncated``."""
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keywords {sorted(kwargs)}")
        if return_tensors not in ("pt", None):
            raise ValueError(f"{type(self).__name__} returns torch tensors only, got return_tensors={return_tensors!r}")
        if text is None and audio is None:
            raise ValueError("give text, audio or both")
        official = self.official_format if official_format is None else bool(official_format)
        data: dict = {}
        n_audio = None
        if audio is not None:
            features = self.feature_extractor(
                audio, sampling_rate=sampling_rate, normalize=normalize, max_windows=max_windows
            )
            data.update(features)
            n_audio = features["audio_windows"].shape[0]
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if n_audio is not None and n_audio != len(texts):
                raise ValueError(f"{len(texts)} prompts for {n_audio} audio inputs; they must match 1:1")
            with_audio = True if audio_token is None else bool(audio_token)
            if answers is not None:
                data.update(self._training_text(texts, list(answers), official))
            else:
                data.update(self._prompts(texts, with_audio, official))
        return BatchFeature(data)

    def _prompts(self, texts: list[str], audio_token: bool, official: bool) -> dict:
        rows = [self._prompt_ids(t, audio_token, official) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self._id(self.tokenizer.pad_token), dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = True
        return {"input_ids": ids, "attention_mask": mask}

    def _training_text(self, prompts: list[str], answers: list[str], official: bool) -> dict:
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts for {len(answers)} answers")
        encoder = SampleEncoder(self.tokenizer)
        rows = [encoder.encode(self._question(p, official), a) for p, a in zip(prompts, answers)]
        width = max(len(ids) for ids, _ in rows)
        out = {
            "input_ids": torch.full((len(rows), width), encoder.pad_id, dtype=torch.long),
            "attention_mask": torch.zeros(len(rows), width, dtype=torch.bool),
            "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
        }
        for i, (ids, labels) in enumerate(rows):
            out["input_ids"][i, : len(ids)] = torch.tensor(ids)
            out["attention_mask"][i, : len(ids)] = True
            out["labels"][i, : len(labels)] = torch.tensor(labels)
        return out

    # -- chat template / decoding ------------------------------------------------------------------
    def apply_chat_template(
        self,
        conversation,
        *,
        official_format: Optional[bool] = None,
        add_generation_prompt: bool = True,
        tokenize: bool = False,
        **kwargs,
    ):
        """A conversation (list of ``{"role", "content"}``; content a string or parts
        ``{"type": "audio", "audio"/"path": ...}`` / ``{"type": "text", "text": ...}``), or a list
        of them -> the rendered string(s); with ``tokenize=True`` the processor's output for them
        (audio parts as the audio). ``add_generation_prompt`` changes nothing (a prompt ends at ``<SEP>``)."""
        import jinja2

        batch = conversation and isinstance(conversation[0], (list, tuple))
        convs = list(conversation) if batch else [conversation]
        official = self.official_format if official_format is None else bool(official_format)
        template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(self.chat_template)
        texts = [
            template.render(
                messages=c,
                official_format=official,
                eos_token=self.tokenizer.eos_token,
                add_generation_prompt=add_generation_prompt,
            )
            for c in convs
        ]
        if not tokenize:
            return texts if batch else texts[0]
        audio = [
            part.get("audio", part.get("path"))
            for c in convs
            for m in c
            if not isinstance(m["content"], str)
            for part in m["content"]
            if part.get("type") == "audio"
        ]
        return self(text=texts, audio=audio or None, **kwargs)

    def batch_decode(self, sequences, skip_special_tokens: bool = True, **kwargs) -> list[str]:
        """ids (B, N) -> strings, special tokens (pad, ``<|endofchunk|>``, eos, ...) dropped."""
        return self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens, **kwargs)

    def decode(self, ids, skip_special_tokens: bool = True, **kwargs) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "audio_windows", "audio_window_mask"]


__all__ = ["AudioFlamingo2FeatureExtractor", "AudioFlamingo2Processor", "CHAT_TEMPLATE", "official_level"]

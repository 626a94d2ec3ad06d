"""AF-CLAP: HTSAT audio tower (transformers' ClapAudioModel) + T5 text encoder + MLP projections.

Audio: each 10-s window -> log-mel (1001, 64) (:class:`~af2.model.mel.LogMel`) -> ClapAudioModel
(HTSAT; AF2 builds it with fusion on, and a 10-s window is never "longer", so only the global
branch runs) -> ``last_hidden_state`` (N, D, 2, 32) flattened to the dense features (N, 64, D),
exactly as AF2's modified HTSAT returns its ``encodings``.

Contrastive side (stage "clap"): the HTSAT's pooled output (N, D), averaged over a clip's valid
windows, and the T5 encoder's masked mean over tokens each go through a 2-layer MLP
(Linear, ReLU, Linear, as LAION-CLAP) to the joint space and are L2-normalised. The learnable
``logit_scale`` (log-space, shape (1,), init log(1/0.07)) is kept here so that a checkpoint
holds it; pass ``logit_scale.exp()`` to :func:`af2.ops.contrastive_loss`. Checkpoints that hold
it as a 0-dim tensor (written before it was (1,)) load unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from af2.model.config import CLAPConfig, MelConfig
from af2.model.mel import LogMel
from af2.nn.contrastive import logit_scale_parameter, upgrade_scalar_logit_scale


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))


def _masked_mean(x: torch.Tensor, mask: Optional[torch.Tensor], dim: int) -> torch.Tensor:
    """Mean of x over ``dim`` where mask (x's shape up to ``dim``, inclusive) is True."""
    if mask is None:
        return x.mean(dim=dim)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=dim) / m.sum(dim=dim).clamp_min(1.0)


class AFCLAP(nn.Module):
    """AF-CLAP. Attributes: ``mel``, ``audio`` (ClapAudioModel), ``audio_projection``, and, with
    ``cfg.text_tower``, ``text`` (T5EncoderModel), ``text_projection``, ``logit_scale``."""

    def __init__(self, cfg: CLAPConfig, mel: MelConfig):
        super().__init__()
        from transformers import ClapAudioConfig, ClapAudioModel

        self.cfg = cfg
        self.mel = LogMel(mel)
        self.audio = ClapAudioModel(ClapAudioConfig(**cfg.audio))
        width = self.audio.config.hidden_size
        self.audio_projection = _mlp(width, cfg.joint_dim)
        self.text = self.text_projection = self.logit_scale = None
        if cfg.text_tower:
            from transformers import T5Config, T5EncoderModel

            if cfg.text_path:
                self.text = T5EncoderModel.from_pretrained(cfg.text_path, local_files_only=True)
            else:
                self.text = T5EncoderModel(T5Config(**cfg.text))
            self.text_projection = _mlp(self.text.config.d_model, cfg.joint_dim)
            self.logit_scale = logit_scale_parameter(cfg.logit_scale_init)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        upgrade_scalar_logit_scale(state_dict, prefix + "logit_scale")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- audio ------------------------------------------------------------------------------
    def _htsat(self, windows: torch.Tensor):
        """windows (N, L) -> ClapAudioModel output for N single 10-s windows."""
        mel = self.mel(windows)[:, None]  # (N, 1, frames, mels)
        dtype = self.audio.audio_encoder.patch_embed.proj.weight.dtype
        is_longer = torch.zeros(windows.shape[0], 1, dtype=torch.bool, device=windows.device)
        return self.audio(input_features=mel.to(dtype), is_longer=is_longer)

    def _valid(self, audio_windows: torch.Tensor, window_mask: Optional[torch.Tensor]):
        B, W, L = audio_windows.shape
        if window_mask is None:
            window_mask = torch.ones(B, W, dtype=torch.bool, device=audio_windows.device)
        if window_mask.shape != (B, W):
            raise ValueError(f"window_mask must be (B, W) = {(B, W)}, got {tuple(window_mask.shape)}")
        return window_mask.bool(), window_mask.reshape(-1).nonzero().squeeze(1)

    def dense_features(self, audio_windows: torch.Tensor, window_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """audio_windows (B, W, L) (L = 160,000 samples), window_mask (B, W) bool (None: all
        valid) -> dense features (B, W, n, D) (n = 64, D = 2048 at af2-3b); zeros on padded
        windows, which are not run through the HTSAT."""
        B, W, _ = audio_windows.shape
        mask, idx = self._valid(audio_windows, window_mask)
        hidden = self._htsat(audio_windows.reshape(B * W, -1).index_select(0, idx)).last_hidden_state
        tokens = hidden.flatten(2).transpose(1, 2)  # (N, 2*32, D)
        out = tokens.new_zeros(B * W, *tokens.shape[1:])
        out = out.index_copy(0, idx, tokens)
        return out.view(B, W, *tokens.shape[1:])

    def encode_audio(self, audio_windows: torch.Tensor, window_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """audio_windows (B, W, L) or (B, L) -> L2-normalised joint embeddings (B, joint_dim):
        the HTSAT's pooled output averaged over valid windows, then the audio MLP."""
        if audio_windows.dim() == 2:
            audio_windows = audio_windows[:, None]
        B, W, _ = audio_windows.shape
        mask, idx = self._valid(audio_windows, window_mask)
        pooled = self._htsat(audio_windows.reshape(B * W, -1).index_select(0, idx)).pooler_output
        full = pooled.new_zeros(B * W, pooled.shape[-1]).index_copy(0, idx, pooled).view(B, W, -1)
        return F.normalize(self.audio_projection(_masked_mean(full, mask, dim=1)), dim=-1)

    # -- text -------------------------------------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, M, Lt) (M captions per audio) or (B, Lt), attention_mask alike ->
        L2-normalised joint embeddings (B, M, joint_dim) or (B, joint_dim)."""
        if self.text is None:
            raise RuntimeError("AFCLAP was built without a text tower (clap.text_tower=False)")
        lead = input_ids.shape[:-1]
        ids = input_ids.reshape(-1, input_ids.shape[-1])
        mask = None if attention_mask is None else attention_mask.reshape(ids.shape)
        hidden = self.text(input_ids=ids, attention_mask=mask).last_hidden_state
        emb = F.normalize(self.text_projection(_masked_mean(hidden, mask, dim=1)), dim=-1)
        return emb.view(*lead, -1)

    def audio_parameters(self) -> list[nn.Parameter]:
        """The HTSAT's parameters (trainable in stage "sft")."""
        return list(self.audio.parameters())

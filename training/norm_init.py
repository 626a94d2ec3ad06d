"""Data-dependent initialisation of the audio transformation's input LayerNorm.

The audio transformation starts with ``LayerNorm(dense * sqrt(D))`` (docs/design.md). A LayerNorm
normalises each token across its D features; it does not remove what all tokens share. Dense
features of an encoder that was not trained for them (the tiny preset's random HTSAT) are
dominated by such a shared component (the mean token is about twice as long as a token's
deviation from it), so every token looks alike to the attention layers above and the LM stages
learn from the audio slowly or not at all.

:func:`init_audio_norm_from_data` sets the LayerNorm's affine parameters so that its outputs have
zero mean and unit variance per feature over the given batches' valid tokens
(``weight = 1 / std``, ``bias = -mean / std``): an initialisation, the parameters train as
before. Use it in the stage that first trains the audio transformation (pre-train). Ranks agree:
the sums are all-reduced when torch.distributed is initialised.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

MIN_STD = 1e-3  # a feature with less spread is left with gain 1 / MIN_STD at most
#: batches the stage draws for the statistics (its loader's first ones; the stage then starts
#: its data from the beginning as usual)
NORM_INIT_BATCHES = 8


@torch.no_grad()
def init_audio_norm_from_data(model, batches, *, device=None) -> dict:
    """batches: collator batches (``audio_windows`` (B, W, L), ``audio_window_mask`` (B, W)).
    Returns ``{"tokens": n, "mean_norm": |mean|, "gain_min": .., "gain_max": ..}`` (before the
    change: the length of the mean output and the gains set)."""
    norm = model.audio_transformer.norm
    D = norm.normalized_shape[0]
    device = device or norm.weight.device
    total = torch.zeros(D, dtype=torch.float64, device=device)
    squares = torch.zeros(D, dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    audio, was_training = model.clap.audio, model.clap.audio.training
    audio.eval()  # a trainable HTSAT (sft) must not update its BatchNorm statistics here
    try:
        for batch in batches:
            windows = batch["audio_windows"].to(device)
            mask = batch.get("audio_window_mask")
            mask = (torch.ones(windows.shape[:2], dtype=torch.bool) if mask is None else mask).to(device).bool()
            if not bool(mask.any()):
                continue
            dense = model.clap.dense_features(windows, mask)[mask]  # (valid windows, n, D)
            y = F.layer_norm(dense.float() * D**0.5, (D,), eps=norm.eps).reshape(-1, D).double()
            total += y.sum(0)
            squares += (y * y).sum(0)
            count += y.shape[0]
    finally:
        audio.train(was_training)
    if dist.is_available() and dist.is_initialized():
        _all_reduce_sums(total, squares, count)
    if count.item() < 2:
        raise ValueError("init_audio_norm_from_data: the batches hold no valid audio window")
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt().clamp_min(MIN_STD)
    norm.weight.copy_((1 / std).to(norm.weight.dtype))
    norm.bias.copy_((-mean / std).to(norm.bias.dtype))
    gains = 1 / std
    return {
        "tokens": int(count.item()),
        "mean_norm": round(float(mean.norm()), 4),
        "gain_min": round(float(gains.min()), 4),
        "gain_max": round(float(gains.max()), 4),
    }


def _all_reduce_sums(*sums: torch.Tensor) -> None:
    """Sum each tensor over the ranks, in place, on a device the process group's backend serves:
    the statistics are computed where the model is (the CPU, before the engine moves it), and
    NCCL reduces CUDA tensors only (seen on an H200: "No backend type associated with device
    type cpu")."""
    backend = str(dist.get_backend())
    on = torch.device("cuda", torch.cuda.current_device()) if "nccl" in backend and "gloo" not in backend else None
    for t in sums:
        buf = t if on is None else t.to(on)
        dist.all_reduce(buf)
        if buf is not t:
            t.copy_(buf)

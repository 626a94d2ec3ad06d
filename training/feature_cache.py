"""Dense-feature cache for stages that keep the AF-CLAP audio encoder frozen (pretrain, long).

There the HTSAT neither trains nor changes: its parameters are frozen and it runs in eval mode
(BatchNorm running statistics fixed, no drop-path; :class:`training.stages.StageModule`), so a
window's dense features (64 tokens x D) are a pure function of the window's samples. On a tiny
model the HTSAT (and its mel front end) is most of a training step, so every epoch after the
first is several times faster when the features are kept.

Entries are keyed by the window's content (:func:`af2.audio.windows.window_key`: BLAKE2b of its
samples, dtype and length), not by sample id: the same audio asked about in several manifest
lines is encoded once, and a changed file can never be served stale features. On a GPU the
training loader's collator computes the keys in its workers (``audio_window_keys``;
training.train), so the training process does not copy every window back to the host to hash
it; on the CPU the cache hashes them here (a worker hashing beside the training threads made a
2-core tiny pretrain step slower: 210 vs 184 ms). Features are kept on the CPU in the dtype the
encoder returned; once ``max_bytes`` is reached, new windows are computed but not stored. Hits,
misses and the bytes held are counted (:meth:`stats`).
"""

from __future__ import annotations

from typing import Optional

import torch

from af2.audio.windows import KEY_BYTES, window_key


class DenseFeatureCache:
    """``cache(clap, windows (B, W, L), mask (B, W), keys (B, W, 16) uint8 or None) -> dense
    features (B, W, n, D)``, the same as ``clap.dense_features(windows, mask)`` (zeros on padded
    windows), computing only windows not seen before. ``keys``: the windows' content keys
    (:func:`af2.audio.windows.window_keys`), hashed here when not given. The caller guarantees
    the encoder is frozen and in eval mode (:func:`encoder_is_frozen`); the cache checks it on
    every call."""

    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._store: dict[bytes, torch.Tensor] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def stats(self) -> dict:
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / total, 4) if total else 0.0,
            "windows": len(self._store),
            "mb": round(self.bytes / 2**20, 2),
            "max_mb": round(self.max_bytes / 2**20, 2),
        }

    def __call__(
        self, clap, windows: torch.Tensor, mask: torch.Tensor, keys: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        if not encoder_is_frozen(clap):
            raise RuntimeError(
                "DenseFeatureCache: the AF-CLAP audio encoder is trainable or in training mode; "
                "its features would go stale"
            )
        B, W, L = windows.shape
        flat_windows, flat_mask = windows.reshape(B * W, L), mask.reshape(B * W).bool()
        valid = flat_mask.nonzero().flatten().tolist()
        if not valid:
            return clap.dense_features(windows, mask)  # nothing valid: the encoder's own all-zeros answer
        if keys is None:
            host = flat_windows.detach().cpu()
            key_of = {i: window_key(host[i]) for i in valid}
        else:
            if keys.shape != (B, W, KEY_BYTES):
                raise ValueError(
                    f"DenseFeatureCache: keys must be (B, W, {KEY_BYTES}) = {(B, W, KEY_BYTES)} "
                    f"for windows {tuple(windows.shape)}, got {tuple(keys.shape)}"
                )
            flat_keys = keys.reshape(B * W, KEY_BYTES).cpu().numpy()
            key_of = {i: flat_keys[i].tobytes() for i in valid}
        missing = [i for i in valid if key_of[i] not in self._store]
        todo: dict[bytes, int] = {}  # key -> its first window: a window repeated in the batch is computed once
        for i in missing:
            todo.setdefault(key_of[i], i)
        fresh: dict[bytes, torch.Tensor] = {}
        if todo:
            rows = torch.tensor(list(todo.values()), device=flat_windows.device)
            with torch.no_grad():
                feats = clap.dense_features(flat_windows.index_select(0, rows)[:, None])[:, 0]
            for k, f in zip(todo, feats):
                fresh[k] = f
                size = f.numel() * f.element_size()
                if self.bytes + size <= self.max_bytes:
                    self._store[k] = f.detach().to("cpu", copy=True)
                    self.bytes += size
        self.misses += len(missing)
        self.hits += len(valid) - len(missing)
        parts = [fresh[key_of[i]] if key_of[i] in fresh else self._store[key_of[i]] for i in valid]
        ref = parts[0]
        stacked = torch.stack([p.to(flat_windows.device, ref.dtype) for p in parts])
        out = stacked.new_zeros(B * W, *ref.shape)
        out[torch.tensor(valid, device=out.device)] = stacked
        return out.view(B, W, *ref.shape)


def encoder_is_frozen(clap) -> bool:
    """True when AF-CLAP's audio encoder (HTSAT) has no trainable parameter and is in eval mode."""
    audio = clap.audio
    return not audio.training and not any(p.requires_grad for p in audio.parameters())

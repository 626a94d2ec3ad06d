"""af2-3b parameter counts, on the meta device (nothing allocated), against the paper's architecture.

Figures derived from the architecture (docs/design.md), checked here:
  xattn block   = LN 2·2048 + to_q 2048·512 + to_kv 2048·1024 + to_out 512·2048 + LN 2·2048
                  + ff 2048·8192 + 8192·2048 + 2 gates                              = 37,756,930
  audio transf. = LN 2·2048 + 3 · (4·2048² + LN 2·2048 + (2048² + 2048)·2 + LN 2·2048) = 75,538,432
  Qwen2.5-3B    = embed 151,669·2048 (tied) + norm 2048 + 36 · (q 2048²+2048, k/v 2·(256·2048+256),
                  o 2048², MLP 3·2048·11008, 2 RMSNorm 2·2048)                       = 3,085,391,872
  HTSAT-large   = transformers' ClapAudioModel (fusion on)                           = 270,931,992
"""

from __future__ import annotations

import os

import torch

from af2.model import AF2Config, AudioFlamingo2

OFFICIAL = {
    "audio_encoder": 270_931_992,
    "audio_transformation": 75_538_432,
    "xattn": 1_359_249_480,
    "xattn_block": 37_756_930,
    "llm": 3_085_391_872,
}


def _rss_mb() -> float:
    """Resident memory of this process now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())  # shared (tied) parameters are counted once


def test_af2_3b_counts_on_meta():
    before = _rss_mb()
    with torch.device("meta"):
        model = AudioFlamingo2(AF2Config.preset("af2-3b"))
    grown_mb = _rss_mb() - before
    assert all(p.is_meta for p in model.parameters())
    assert grown_mb < 1024, f"building on meta grew the process by {grown_mb:.0f} MB"  # fp32 weights: ~21 GB

    counts = {
        "audio_encoder": _count(model.clap.audio),
        "audio_transformation": _count(model.audio_transformer),
        "xattn": _count(model.xattn),
        "xattn_block": _count(model.xattn["0"]),
        "llm": _count(model.llm),
    }
    assert counts == OFFICIAL
    assert len(model.xattn) == 36

    d, ff, vocab, inter, kv = 2048, 8192, 151_669, 11_008, 256
    block = 2 * d + d * 512 + d * 1024 + 512 * d + 2 * d + 2 * d * ff + 2
    at = 2 * d + 3 * (4 * d * d + 2 * d + 2 * (d * d + d) + 2 * d)
    layer = (d * d + d) + 2 * (kv * d + kv) + d * d + 3 * d * inter + 2 * d
    assert (block, at, vocab * d + d + 36 * layer) == (
        OFFICIAL["xattn_block"],
        OFFICIAL["audio_transformation"],
        OFFICIAL["llm"],
    )
    af2_total = sum(counts[k] for k in ("audio_encoder", "audio_transformation", "xattn", "llm"))
    # docs/design.md's 4.80 B also counts 7,838,015 HTSAT parameters AF2 never uses (torchlibrosa
    # extractors, AudioSet head) that transformers' ClapAudioModel does not have.
    assert af2_total == 4_798_949_791 - 7_838_015 == 4_791_111_776
    trainable = {s: sum(p.numel() for p in model.trainable_parameters(s)) for s in ("pretrain", "sft", "long")}
    assert trainable["pretrain"] == trainable["long"] == 75_538_432 + 1_359_249_480 + vocab * d
    assert trainable["sft"] == trainable["pretrain"] + 270_931_992

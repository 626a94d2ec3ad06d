"""The ``model`` section of benchmarks/report.py: the whole AF2 model.

At ``af2-3b`` size (the paper's config, random weights, text tower left out: AF2 inference and
stage-1 training never use it), built with its parameters on the meta device and materialised
directly on the target device in bfloat16 (no float32 copy anywhere, nothing initialised on the
CPU), it measures:

(a) a stage-1 ("pretrain") training step, forward + backward of the trainable parameters (audio
    transformation, xattn blocks, input embeddings; HTSAT and LLM frozen), with af2's fused ops
    (``model.use_fused_ops(True)``) and with their eager twins (``False``), same weights, ratio =
    eager / fused. Two inputs: raw 10-s windows (HTSAT included, the real step) and precomputed
    AF-CLAP features (``dense``: the part the fused ops touch).
(b) 5-minute (30-window) audio inference at batch 8: the HTSAT over the 240 windows (chunked,
    ``HTSAT_CHUNK`` windows per call), then ``generate`` from those features with 1 new token
    (audio transformation + media K/V caching + prompt prefill) and with N new tokens; ms per
    generated token = (t_N - t_1) / (N - 1) (row: ``ms`` = t_N, ``audio_ms``, ``prefill_ms`` = t_1,
    ``end_to_end_ms`` = HTSAT + t_N), against af2's earlier hand-written greedy loop on the same
    features (``baseline_ms``, ``ratio`` = loop / generate, target >= 0.95; ``same_tokens``);
    ``torch.cuda.max_memory_allocated`` over the whole
    inference (weights included; ``peak_mem_MB``, ``fits_80GB``), which must stay under 80 GB.

``smoke`` runs the same code at the ``tiny`` preset with tiny batches (bfloat16 on the CPU too),
so tests/test_report_model.py exercises every line of it on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import torch
from torch import nn

from af2.model import AF2Config, AudioFlamingo2
from af2.model.random_batch import random_lm_batch, random_token_ids
from benchmarks.earlier_decoding import greedy_loop

#: Per size: preset, the training batch (B samples, W windows, S tokens) and the inference batch
#: (B, W windows, P prompt tokens, N new tokens).
MODEL_CASES = {
    "full": dict(preset="af2-3b", train=dict(B=8, W=3, S=256), infer=dict(B=8, W=30, P=32, N=32)),
    "smoke": dict(preset="tiny", train=dict(B=2, W=2, S=24), infer=dict(B=2, W=3, P=8, N=4)),
}
HTSAT_CHUNK = 64  # windows per HTSAT call in inference: bounds the HTSAT activations (240 windows at once: unmeasured)
SAMPLES = 160_000  # 10 s at 16 kHz


@contextlib.contextmanager
def params_on_meta():
    """Module parameters are created on the meta device (buffers stay real, on the CPU): the
    model's structure and its buffers (mel constants, rotary frequencies, Swin position indices)
    without allocating or initialising any weight."""
    register = nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def materialise(
    model: nn.Module, device: torch.device, dtype: torch.dtype, seed: int = 0, std: float = 0.02, gate: float = 0.5
) -> None:
    """Replace every meta parameter by a random one on ``device`` in ``dtype`` (matrices N(0, std),
    biases 0, norm scales 1, the xattn gates ``gate`` so the audio reaches the logits), keeping
    tied parameters tied; buffers move to ``device`` (floating ones cast to ``dtype``)."""
    g = torch.Generator(device=device).manual_seed(seed)
    made: dict = {}
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is None:
                continue
            if id(p) not in made:
                t = torch.empty(p.shape, device=device, dtype=dtype if p.is_floating_point() else p.dtype)
                if name.endswith("gate"):
                    t.fill_(gate)
                elif name.endswith("bias"):
                    t.zero_()
                elif p.dim() >= 2:
                    t.normal_(0.0, std, generator=g)
                else:  # norm scales, logit scale
                    t.fill_(1.0)
                made[id(p)] = nn.Parameter(t, requires_grad=p.requires_grad)
            module._parameters[name] = made[id(p)]
    model.to(device=device, dtype=dtype)  # the buffers (parameters are there already)


def build_model(preset: str, device: torch.device, dtype: torch.dtype = torch.bfloat16) -> AudioFlamingo2:
    """AudioFlamingo2 at ``preset`` without its text tower, random weights on ``device``."""
    cfg = AF2Config.preset(preset)
    cfg.clap.text_tower = False
    with params_on_meta():
        model = AudioFlamingo2(cfg)
    materialise(model, device, dtype)
    return model


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dense_features_chunked(
    model: AudioFlamingo2, windows: torch.Tensor, mask: torch.Tensor, chunk: int = HTSAT_CHUNK
) -> torch.Tensor:
    """clap.dense_features over (B, W, L) windows, at most ``chunk`` windows per HTSAT call."""
    B, W, L = windows.shape
    flat_w, flat_m = windows.reshape(B * W, 1, L), mask.reshape(B * W, 1)
    parts = [model.clap.dense_features(flat_w[i : i + chunk], flat_m[i : i + chunk]) for i in range(0, B * W, chunk)]
    return torch.cat(parts).view(B, W, *parts[0].shape[2:])


def model_rows(
    device: torch.device,
    time_ms: Callable,
    quick: bool,
    smoke: bool = False,
    time_left: Callable[[], float] = lambda: float("inf"),
) -> Iterator[dict]:
    """Rows of the model section (report.py's format), most important first; stops early (with a
    note row) when ``time_left()`` runs out between measurements."""
    case = MODEL_CASES["smoke" if smoke else "full"]
    dtype = torch.bfloat16
    cuda = device.type == "cuda"
    if time_left() <= 0:
        yield {
            "op": "af2_model",
            "mode": "skipped",
            "dtype": "bfloat16",
            "model": case["preset"],
            "shape": {},
            "ms": None,
            "target": None,
            "skipped": "time budget spent",
            "achieved": "skipped",
        }
        return
    t0 = time.perf_counter()
    model = build_model(case["preset"], device, dtype)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    base = {
        "op": "af2_model",
        "dtype": "bfloat16",
        "model": case["preset"],
        "text_tower": False,
        "params": n_params,
        "build_s": round(build_s, 1),
    }
    weights_mb = torch.cuda.memory_allocated(device) / 2**20 if cuda else None
    g = torch.Generator().manual_seed(0)
    reps = 1 if smoke else (3 if quick else 5)

    # (a) stage-1 training step, fused vs eager, from windows then from dense features
    tr = case["train"]
    model.train()
    params = model.set_stage("pretrain")
    batch = random_lm_batch(model, B=tr["B"], W=tr["W"], S=tr["S"], generator=g, device=device)
    batch["audio_window_mask"][0, tr["W"] - 1 :] = False  # one padded window
    with torch.no_grad():
        dense = model.clap.dense_features(batch["audio_windows"], batch["audio_window_mask"])
    for source in ("windows", "dense"):
        if time_left() <= 0:
            yield {
                **base,
                "mode": "skipped",
                "shape": {"source": source, **tr},
                "ms": None,
                "target": None,
                "skipped": "time budget spent",
                "achieved": "skipped",
            }
            return
        inputs = dict(batch)
        if source == "dense":
            inputs.pop("audio_windows")
            inputs["dense_features"] = dense
        ms, peak = {}, {}
        for impl in ("af2", "eager"):
            model.use_fused_ops(impl == "af2")

            def step():
                loss = model(**inputs).loss
                torch.autograd.grad(loss, params)

            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            ms[impl] = time_ms(step, device, warmup=1 if smoke else 2, reps=reps)
            peak[impl] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None
        model.use_fused_ops(True)
        yield {
            **base,
            "mode": "train fwd+bwd",
            "stage": "pretrain",
            "shape": {"source": source, **tr, "trainable_params": sum(p.numel() for p in params)},
            "ms": round(ms["af2"], 2),
            "peak_mem_MB": peak["af2"],
            "baseline": "eager twins (use_fused_ops(False))",
            "baseline_ms": round(ms["eager"], 2),
            "baseline_peak_mem_MB": peak["eager"],
            "ratio": round(ms["eager"] / ms["af2"], 3),
            "target": None,
            "achieved": f"stage-1 step from {source}: {ms['af2']:.1f} ms fused vs {ms['eager']:.1f} ms eager",
        }
    del batch, dense
    model.eval()
    if cuda:
        torch.cuda.empty_cache()

    # (b) 30-window inference at batch 8: HTSAT (chunked), prefill, decode
    if time_left() <= 0:
        yield {
            **base,
            "mode": "skipped",
            "shape": dict(case["infer"]),
            "ms": None,
            "target": None,
            "skipped": "time budget spent",
            "achieved": "skipped",
        }
        return
    inf = case["infer"]
    B, W, P, N = inf["B"], inf["W"], inf["P"], inf["N"]
    windows = (0.1 * torch.randn(B, W, SAMPLES, generator=g)).to(device)
    wmask = torch.ones(B, W, dtype=torch.bool, device=device)
    ids = random_token_ids(model, B, P, g).to(device)
    ids[:, -1] = model.config.token_ids["sep"]
    amask = torch.ones_like(ids)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        feats: dict = {}

        def audio():
            feats["dense"] = dense_features_chunked(model, windows, wmask)

        audio_ms = time_ms(audio, device, warmup=0 if smoke else 1, reps=1 if smoke else 2)
        gen = lambda n: model.generate(
            dense_features=feats["dense"],
            audio_window_mask=wmask,
            input_ids=ids,
            attention_mask=amask,
            max_new_tokens=n,
            return_ids=True,
        )
        prefill_ms = time_ms(lambda: gen(1), device, warmup=1, reps=reps)
        _sync(device)
        t = time.perf_counter()
        new = gen(N)
        _sync(device)
        n_new = int(new.shape[1])
        full_ms = (
            time_ms(lambda: gen(N), device, warmup=0, reps=reps) if n_new == N else (time.perf_counter() - t) * 1e3
        )
        loop = lambda: greedy_loop(model, ids, amask, None, wmask, N, dense_features=feats["dense"])
        same_tokens = bool(torch.equal(loop(), new))
        loop_ms = time_ms(loop, device, warmup=0, reps=reps)
    per_token = (full_ms - prefill_ms) / max(n_new - 1, 1)
    peak_mb = round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None
    yield {
        **base,
        "mode": "inference",
        "shape": {
            "B": B,
            "W": W,
            "audio_s": W * 10,
            "prompt_tokens": P,
            "new_tokens": n_new,
            "htsat_chunk": HTSAT_CHUNK,
        },
        "ms": round(full_ms, 1),
        "audio_ms": round(audio_ms, 1),
        "prefill_ms": round(prefill_ms, 1),
        "end_to_end_ms": round(audio_ms + full_ms, 1),
        "ms_per_token": round(per_token, 2),
        "weights_MB": None if weights_mb is None else round(weights_mb, 1),
        "peak_mem_MB": peak_mb,
        "fits_80GB": None if peak_mb is None else peak_mb * 2**20 < 80e9,
        "baseline": "earlier greedy loop (benchmarks/earlier_decoding.py)",
        "baseline_ms": round(loop_ms, 1),
        "ratio": round(loop_ms / full_ms, 3),
        "same_tokens": same_tokens,
        "target": 0.95,
        "achieved": (
            f"{W * 10}-s audio x {B}: HTSAT {audio_ms:.0f} ms, audio transformation + prefill "
            f"{prefill_ms:.0f} ms, {per_token:.1f} ms per generated token; generate vs the earlier loop "
            f"{loop_ms / full_ms:.2f}x (target >= 0.95)"
            + ("" if peak_mb is None else f", peak {peak_mb * 2**20 / 1e9:.1f} GB allocated (weights included)")
        ),
    }

"""Runs every op of af2.ops on small CPU tensors, forward and backward, against af2.reference.

Run by tests/test_packaging_sdist.py with the python of a fresh venv that holds torch and af2
installed from the sdist, nothing else; prints one line per op and "ops ok" at the end.
"""

from __future__ import annotations

import torch

import af2.ops as ops
from af2 import reference


def close(a, b, what):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m: f"{what}: {m}")


def grads(fn, *inputs):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    loss = sum(
        (o.float() * torch.linspace(-1, 1, o.numel()).view(o.shape)).sum()
        for o in (out if isinstance(out, tuple) else (out,))
    )
    loss.backward()
    return out, [t.grad for t in inputs]


def check(name, fused, eager, *inputs):
    out_f, g_f = grads(fused, *inputs)
    out_e, g_e = grads(eager, *inputs)
    for i, (a, b) in enumerate(
        zip(out_f if isinstance(out_f, tuple) else (out_f,), out_e if isinstance(out_e, tuple) else (out_e,))
    ):
        close(a, b, f"{name} output {i}")
    for i, (a, b) in enumerate(zip(g_f, g_e)):
        close(a, b, f"{name} grad {i}")
    print(f"{name} ok")


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3, 8)
    check(
        "rope_windowed",
        lambda t: ops.rope_windowed(t, window_size=3),
        lambda t: reference.rope_windowed(t, window_size=3),
        x,
    )
    k = torch.randn(2, 6, 1, 8)
    check(
        "rope_windowed_qk",
        lambda q, kk: ops.rope_windowed_qk(q, kk, window_size=2),
        lambda q, kk: (reference.rope_windowed(q, window_size=2), reference.rope_windowed(kk, window_size=2)),
        x,
        k,
    )

    loc = torch.tensor([[True, False, False, True, False], [False, True, False, False, False]])
    start, end = ops.media_key_ranges(loc, 3)
    assert start.tolist() == [[0, 0, 0, 3, 3], [0, 0, 0, 0, 0]] and end.tolist() == [[3, 3, 3, 6, 6], [0, 3, 3, 3, 3]]
    s2, e2 = ops.media_key_ranges_from_time(loc.cumsum(1), torch.tensor([[3, 2], [1, 1]]), 3)
    assert e2.tolist() == [[3, 3, 3, 5, 5], [0, 1, 1, 1, 1]], e2.tolist()
    print("media_key_ranges ok")
    q, kv = torch.randn(2, 5, 2, 4), torch.randn(2, 6, 2, 4)
    check(
        "media_cross_attention",
        lambda a, b, c: ops.media_cross_attention(a, b, c, key_start=start, key_end=end),
        lambda a, b, c: reference.media_cross_attention(a, b, c, key_start=start, key_end=end),
        q,
        kv,
        kv * 0.5,
    )

    y = torch.randn(3, 7)
    check("gated_residual", ops.gated_residual, reference.gated_residual, y, torch.randn(3, 7), torch.tensor([0.3]))

    audio = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(4, 2, 8), dim=-1)
    neg = torch.nn.functional.normalize(torch.randn(4, 2, 3, 8), dim=-1)
    check(
        "contrastive_loss",
        lambda a, t, n: ops.contrastive_loss(a, t, logit_scale=10.0, hard_negatives=n),
        lambda a, t, n: reference.contrastive_loss(a, t, logit_scale=10.0, hard_negatives=n),
        audio,
        text,
        neg,
    )
    print("ops ok")


if __name__ == "__main__":
    main()

"""contrastive_loss over 2 processes (gloo, CPU): each rank holds a shard; the loss and the
gradients match one process holding the whole batch."""

from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from af2.ops import contrastive_loss

B_LOCAL, M, N, D, WORLD = 6, 2, 3, 16, 2


def _data():
    g = torch.Generator().manual_seed(0)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g, dtype=torch.float64), dim=-1)
    B = B_LOCAL * WORLD
    return unit(B, D), unit(B, M, D), unit(B, M, N, D)


def _worker(rank, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        audio, text, neg = _data()
        sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        a, t, h = (x[sl].clone().requires_grad_() for x in (audio, text, neg))
        scale = torch.tensor(8.0, dtype=torch.float64, requires_grad=True)
        loss = contrastive_loss(a, t, logit_scale=scale, hard_negatives=h)
        loss.backward()
        out.put((rank, loss.item(), *(x.grad.numpy().copy() for x in (a, t, h, scale))))
        dist.barrier()  # no rank tears down while a peer still talks to it
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process():
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, out)) for r in range(WORLD)]
    for p in procs:
        p.start()
    results = sorted((out.get(timeout=120) for _ in range(WORLD)), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    audio, text, neg = (x.requires_grad_() for x in _data())
    scale = torch.tensor(8.0, dtype=torch.float64, requires_grad=True)
    full = contrastive_loss(audio, text, logit_scale=scale, hard_negatives=neg)
    full.backward()
    # Each rank returns the mean of its terms; their average is the global mean, and averaging
    # gradients over ranks (what DDP does) gives the single-process gradients.
    torch.testing.assert_close(sum(r[1] for r in results) / WORLD, full.item(), rtol=1e-12, atol=1e-12)
    results = [(r[0], r[1], *map(torch.from_numpy, r[2:])) for r in results]
    for rank, _, ga, gt, gh, _gs in results:
        sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        torch.testing.assert_close(ga / WORLD, audio.grad[sl], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gt / WORLD, text.grad[sl], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gh / WORLD, neg.grad[sl], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sum(r[5] for r in results) / WORLD, scale.grad, rtol=1e-10, atol=1e-12)

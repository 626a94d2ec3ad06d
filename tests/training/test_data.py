"""training.data: the stage mixture and BatchStream (empty batches skipped on all ranks together,
the skipped-file report kept and logged per epoch and at the end of the stage)."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from af2.audio.windows import window_keys
from af2.data.manifest import load_manifest, write_manifest
from af2.text.tokens import tiny_tokenizer
from tests.data.audio_files import tone, write
from training.data import BatchStream, build_loader, write_mixture

N_GOOD = 7  # + 1 missing file: 8 one-sample batches, 4 per rank on 2 ranks


def _folder(root: Path) -> Path:
    for k in range(N_GOOD):
        write(root / f"c{k}.wav", tone(1.0))
    recs = [{"audio": f"c{k}.wav", "prompt": "p?", "answer": "a", "id": f"c{k}"} for k in range(N_GOOD)]
    write_manifest(root / "m.jsonl", recs + [{"audio": "gone.wav", "prompt": "p?", "answer": "a", "id": "gone"}])
    return root / "m.jsonl"


def _loader(manifest: Path, *, world: int = 1, rank: int = 0):
    """The stage's loader (resumable dynamic batches), one sample per batch."""
    data = {
        "max_windows": 1,
        "max_windows_per_batch": 1,
        "max_batch_size": None,
        "max_length": None,
        "num_workers": 0,
        "seed": 5,
    }
    return build_loader({"data": data}, manifest, _tokenizer(), world=world, rank=rank)


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return tiny_tokenizer()


def test_window_keys_come_from_the_loader_workers(tmp_path):
    data = {
        "max_windows": 1,
        "max_windows_per_batch": 2,
        "max_batch_size": None,
        "max_length": None,
        "num_workers": 1,
        "seed": 5,
    }
    loader = build_loader({"data": data}, _folder(tmp_path), _tokenizer(), world=1, rank=0, window_keys=True)
    batches = [b for b in loader if b["ids"]]
    assert batches and all(
        torch.equal(b["audio_window_keys"], window_keys(b["audio_windows"], b["audio_window_mask"])) for b in batches
    )


def test_one_rank_reports_every_epoch_and_the_stage_end(tmp_path, caplog):
    loader = _loader(_folder(tmp_path))
    stream = BatchStream(loader)
    with caplog.at_level(logging.INFO, logger="training.data"):
        first = [next(stream) for _ in range(N_GOOD)]  # the whole first epoch: the empty batch is skipped
        assert stream.reports == [] and stream.position["epoch"] == 0
        second = [next(stream) for _ in range(2)]  # rolls over: epoch 0's report is logged
        stream.close()  # end of the stage: epoch 1's partial report
    assert all(b["ids"] for b in first + second)
    assert sorted(i for b in first for i in b["ids"]) == sorted(f"c{k}" for k in range(N_GOOD))
    done, partial = stream.reports
    assert (done.epoch, done.complete, done.batches, done.empty_batches) == (0, True, N_GOOD, 1)
    assert [s.kind for s in done.skipped] == ["missing"] and done.skipped[0].id == "gone"
    assert (partial.epoch, partial.complete, partial.batches) == (1, False, 2)
    assert "rank 0 data report, epoch 0: 7 samples" in caplog.text and "[missing] gone" in caplog.text
    assert "epoch 1 (stopped early): 2 samples" in caplog.text
    with pytest.raises(RuntimeError, match="closed"):
        next(stream)


def test_resume_position_counts_planned_batches(tmp_path):
    manifest = _folder(tmp_path)
    stream = BatchStream(_loader(manifest))
    for _ in range(5):
        next(stream)
    again = BatchStream(_loader(manifest), **stream.position)  # --resume: same data in the same order
    assert [next(again)["ids"] for _ in range(6)] == [next(stream)["ids"] for _ in range(6)]
    assert again.position == stream.position and again.position["epoch"] == 1


def test_an_epoch_without_any_batch_raises(tmp_path):
    write_manifest(
        tmp_path / "m.jsonl",
        [{"audio": f"gone{k}.wav", "prompt": "p?", "answer": "a", "id": f"g{k}"} for k in range(2)],
    )
    with pytest.raises(RuntimeError, match="no usable batch in a whole epoch"):
        next(BatchStream(_loader(tmp_path / "m.jsonl")))


def _rank(rank: int, world: int, manifest: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        loader = _loader(Path(manifest), world=world, rank=rank)
        stream = BatchStream(loader)
        steps = []
        for _ in range(7):  # 3 usable batches per epoch and rank: two epochs and one more step
            batch = next(stream)
            steps.append({"ids": batch["ids"], "position": stream.position})
        stream.close()
        reports = [
            {
                "epoch": r.epoch,
                "complete": r.complete,
                "batches": r.batches,
                "empty": r.empty_batches,
                "skipped": [(s.kind, s.id) for s in r.skipped],
            }
            for r in stream.reports
        ]
        Path(out, f"rank{rank}.json").write_text(
            json.dumps({"steps": steps, "reports": reports, "planned": len(loader)})
        )
    finally:
        dist.destroy_process_group()


def test_two_ranks_skip_an_empty_batch_together(tmp_path):
    manifest = _folder(tmp_path)
    mp.spawn(_rank, args=(2, str(manifest), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["planned"] == r1["planned"] == 4
    # the same planned batch in every step on both ranks (positions equal), epochs roll over together
    assert [s["position"] for s in r0["steps"]] == [s["position"] for s in r1["steps"]]
    assert [s["position"]["epoch"] for s in r0["steps"]] == [0, 0, 0, 1, 1, 1, 2]
    for epoch in (0, 1):
        rep0, rep1 = r0["reports"][epoch], r1["reports"][epoch]
        assert rep0["epoch"] == rep1["epoch"] == epoch and rep0["complete"] and rep1["complete"]
        assert rep0["batches"] == rep1["batches"] == 3 and rep0["empty"] == rep1["empty"] == 1
        skipped = dict(rep0["skipped"] + rep1["skipped"])
        assert sorted(skipped) == ["missing", "peer_empty"] and skipped["missing"] == "gone"
        delivered = [i for s in r0["steps"] + r1["steps"] if s["position"]["epoch"] == epoch for i in s["ids"]]
        # every good sample once: delivered, or reported as dropped beside the other rank's empty batch
        assert sorted(delivered + [skipped["peer_empty"]]) == sorted(f"c{k}" for k in range(N_GOOD))
    partial = r0["reports"][2]
    assert partial["epoch"] == 2 and not partial["complete"] and partial["batches"] == 1


def test_mixture_keeps_lines_with_unicode_separators(tmp_path):
    write(tmp_path / "a.wav", tone(1.0))
    write_manifest(
        tmp_path / "m.jsonl",
        [
            {"audio": "a.wav", "prompt": "line\u2028break\u0085?", "answer": "\u00e9", "id": "u"},
            {"audio": "a.wav", "prompt": "p", "answer": "b", "id": "v"},
        ],
    )
    out = write_mixture([{"manifest": str(tmp_path / "m.jsonl")}], tmp_path / "mix.jsonl", seed=0)
    samples = load_manifest(out, strict=True).samples
    assert [s.prompt for s in samples] == ["line\u2028break\u0085?", "p"]
    assert samples[0].audio == (tmp_path / "a.wav").resolve()


def test_weighted_and_repeated_sources_keep_every_copy(tmp_path):
    """A weight > 1 repeats a manifest's lines (and a manifest may be listed twice): every copy
    must reach the stage, so repeats get distinct ids instead of being dropped as duplicates."""
    write(tmp_path / "a.wav", tone(1.0))
    write_manifest(
        tmp_path / "m.jsonl", [{"audio": "a.wav", "prompt": f"p{i}", "answer": "a", "id": f"s{i}"} for i in range(3)]
    )
    src = {"manifest": str(tmp_path / "m.jsonl")}
    out = write_mixture([{**src, "weight": 2}, src], tmp_path / "mix.jsonl", seed=0)
    result = load_manifest(out)
    assert not result.errors
    ids = [s.id for s in result.samples]
    assert len(ids) == 9 and len(set(ids)) == 9
    assert ids[:3] == ["s0", "s1", "s2"] and ids[3:6] == ["s0~1", "s1~1", "s2~1"] and ids[6] == "s0~2"
    assert [s.prompt for s in result.samples] == [f"p{i}" for i in range(3)] * 3


def test_stages_shorter_than_long_scenes_exclude_them():
    """Long scenes last up to 5 min (30 windows) and their answers need all of it: a stage with a
    shorter context must not train on them cut to fit."""
    import inspect

    import yaml

    from af2.data.synth.generate import generate
    from training.config import SCHEMA

    longest = max(inspect.signature(generate).parameters["long_seconds"].default)
    checked = 0
    for path in sorted((Path(__file__).resolve().parents[2] / "training" / "configs").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if "stages" in cfg:
            continue  # the curriculum file
        if cfg["data"].get("max_windows", SCHEMA["data"]["max_windows"]) * 10 < longest:
            assert all(src.get("long_audio") == "exclude" for src in cfg["data"]["sources"]), path.name
            checked += 1
    assert checked == 3  # clap, pretrain, sft


@pytest.mark.parametrize("skip", [False, True])
def test_stage_key_skips_cut_long_scenes(tmp_path, skip):
    write(tmp_path / "long.wav", tone(12.0))  # 2 windows, the stage allows 1
    write(tmp_path / "short.wav", tone(1.0))
    write_manifest(
        tmp_path / "m.jsonl",
        [
            {"audio": "long.wav", "prompt": "p?", "answer": "a", "id": "long", "long_audio": True},
            {"audio": "short.wav", "prompt": "p?", "answer": "a", "id": "short"},
        ],
    )
    data = {
        "max_windows": 1,
        "max_windows_per_batch": 2,
        "max_batch_size": None,
        "max_length": None,
        "num_workers": 0,
        "seed": 0,
        "skip_truncated_long_audio": skip,
    }
    loader = build_loader({"data": data}, tmp_path / "m.jsonl", _tokenizer(), world=1, rank=0)
    batches = list(loader)
    ids = [i for b in batches for i in b["ids"]]
    skipped = [s for b in batches for s in b["skipped"]]
    assert sorted(ids) == (["short"] if skip else ["long", "short"])
    assert [(s.id, s.kind) for s in skipped] == ([("long", "truncated_long_audio")] if skip else [])

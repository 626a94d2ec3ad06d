"""AF-CLAP stage data: positives and hard negatives from the LLM pipelines' output, fallbacks otherwise.

The manifest is written by hand in the format of ``python -m af2.data.llm paraphrase`` chained
into ``negatives`` on audio + caption records (tests/llm checks that the real chain writes it),
then it takes the stage's data path: the mixture (training/data.py), the dataset, ClapCollator
and the contrastive loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from af2.data.dataset import AudioQADataset
from af2.data.manifest import load_manifest
from af2.data.negatives import KINDS
from af2.model import AFCLAP, AF2Config
from training.clap import CAPTION_TEMPLATES, ClapCollator, caption_tokenizer, clap_loss, sample_texts
from training.data import write_mixture

PROMPT = "Describe the audio in detail."


def chained_line(i: int, caption: str, paraphrases: list[str], negatives: list[dict]) -> dict:
    """One line as ``paraphrase`` then ``negatives`` write it for ``{"id", "audio", "caption"}``."""
    prov = {"model": "m", "template_version": "v1", "generated_at": "2026-11-26T00:00:00Z"}
    return {
        "id": f"c{i}",
        "audio": f"../in/clips/c{i}.wav",
        "caption": caption,
        "prompt": PROMPT,
        "answer": caption,
        "paraphrases": paraphrases,
        "provenance": {
            "pipeline": "negatives",
            "source_id": f"c{i}",
            **prov,
            "previous": {"pipeline": "paraphrase", "source_id": f"c{i}", **prov},
        },
        "negatives": negatives,
    }


LINES = [
    chained_line(
        0,
        "A dog barks twice then a car passes",
        [
            "Twice a dog barks, and then a car goes by",
            "A car passes after a dog barks two times",
            "You hear a dog bark twice before a car passes",
        ],
        [
            {"text": "A car passes then a dog barks twice", "kind": "swap_order", "source": "llm"},
            {"text": "A dog barks three times then a car passes", "kind": "change_count", "source": "llm"},
            {"text": "A dog barks twice then a bus passes", "kind": "substitute_event", "source": "rules"},
        ],
    ),
    # one negative only (and one that repeats a positive, dropped): the rules fill the rest
    chained_line(
        1,
        "A loud siren then a quiet bell",
        ["A loud siren sounds, followed by a quiet bell", "First a loud siren, then a soft bell"],
        [
            {"text": "A quiet siren then a loud bell", "kind": "swap_attributes", "source": "llm"},
            {"text": "first a loud siren, then a soft bell.", "kind": "swap_order", "source": "llm"},
        ],
    ),
]
PLAIN = {
    "id": "q0",
    "audio": "../in/clips/q0.wav",
    "prompt": "How many beeps?\n(A) 2\n(B) 3",
    "answer": "3",
    "choices": ["2", "3"],
    "skill": "counting",
}  # an AudioSkills line: templates and rules


@pytest.fixture
def manifest(tmp_path) -> Path:
    clips = tmp_path / "in" / "clips"
    clips.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, seconds in (("c0", 3.0), ("c1", 12.0), ("q0", 2.0)):
        sf.write(
            str(clips / f"{name}.wav"),
            (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32),
            16000,
            subtype="PCM_16",
        )
    path = tmp_path / "out" / "neg.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(line) + "\n" for line in [*LINES, PLAIN]))
    return path


def test_chained_output_feeds_the_clap_stage(manifest, tmp_path):
    assert load_manifest(manifest, strict=True).ok
    mixture = write_mixture([{"manifest": str(manifest)}], tmp_path / "stage" / "mixture.jsonl", seed=0)
    dataset = AudioQADataset.from_manifest(mixture, max_windows=2)
    assert not dataset.manifest_errors and len(dataset) == 3
    m, n = 2, 3
    cfg = AF2Config.preset("tiny")
    tokenizer = caption_tokenizer(cfg)  # byte-level over the tiny text tower's vocab
    batch = ClapCollator(tokenizer, max_windows=2, m=m, n=n, max_length=48)([dataset[i] for i in range(3)])
    assert batch["ids"] == ["c0", "c1", "q0"]

    # line c0: its first M paraphrases, and its N negatives (kinds kept) for each positive
    assert batch["pos_texts"][0] == LINES[0]["paraphrases"][:m]
    given = [x["text"] for x in LINES[0]["negatives"]]
    assert batch["neg_texts"][0] == given * m
    assert batch["neg_kinds"][0] == ["swap_order", "change_count", "substitute_event"] * m
    assert batch["text_sources"][0] == ("paraphrases", "negatives")

    # line c1: the negative equal to a paraphrase is dropped, rule-based ones of the caption fill in
    assert batch["pos_texts"][1] == LINES[1]["paraphrases"]
    row = batch["neg_texts"][1][:n]
    assert row[0] == "A quiet siren then a loud bell" and batch["neg_texts"][1] == row * m
    assert "first a loud siren, then a soft bell." not in row and len(set(row)) == n
    assert batch["neg_kinds"][1][0] == "swap_attributes" and set(batch["neg_kinds"][1][1:n]) <= set(KINDS)

    # the AudioSkills line: template captions and rule/template negatives, as before
    assert batch["text_sources"][2] == ("templates", "rules")
    assert batch["pos_texts"][2][0] == "a recording in which the answer to 'How many beeps' is 3"
    assert len(batch["neg_texts"][2]) == m * n and len(batch["neg_kinds"][2]) == m * n

    # what the loss sees: the tokens of exactly those texts, (B, M, T) and (B, M·N, T)
    ids, _ = tokenizer([t for row in batch["pos_texts"] for t in row], 48)
    assert torch.equal(batch["text_ids"], ids.view(3, m, -1))
    ids, _ = tokenizer([t for row in batch["neg_texts"] for t in row], 48)
    assert torch.equal(batch["neg_ids"], ids.view(3, m * n, -1))
    assert batch["audio_windows"].shape[:2] == (3, 2)

    torch.manual_seed(0)
    loss = clap_loss(AFCLAP(cfg.clap, cfg.mel), batch, m=m, n=n)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()


def _sample(extra: dict, **kw):
    from af2.data.manifest import Sample

    base = dict(
        audio=Path("/x.wav"),
        prompt=PROMPT,
        answer="A dog barks",
        start=None,
        end=None,
        skill=None,
        id="s",
        choices=None,
        line=7,
    )
    return Sample(**{**base, **kw}, extra=extra)


def test_short_or_plain_lists_are_filled_and_bad_ones_named():
    texts = sample_texts(
        _sample({"caption": "A dog barks", "paraphrases": ["A dog is barking"], "negatives": ["A cat meows"]}), m=3, n=2
    )
    assert texts.positives[:2] == ["A dog is barking", "A dog barks"]  # then the caption, then templates
    assert len(set(texts.positives)) == 3
    assert texts.negatives[0][0] == "A cat meows" and texts.kinds[0][0] == "given"
    assert len(set(texts.negatives[0])) == 2
    only_paraphrases = sample_texts(_sample({"paraphrases": ["A dog is barking", "Barking of a dog"]}), m=2, n=2)
    assert only_paraphrases.sources == ("paraphrases", "rules") and len(only_paraphrases.negatives) == 2
    with pytest.raises(ValueError, match=r"sample 's' \(manifest line 7\): 'paraphrases' must be a list of strings"):
        sample_texts(_sample({"paraphrases": "A dog is barking"}), m=2, n=2)
    with pytest.raises(ValueError, match="'negatives' must be a string or an object"):
        sample_texts(_sample({"negatives": [{"kind": "swap_order"}]}), m=2, n=2)


def test_a_caption_without_paraphrases_gives_its_wordings_and_composition_aware_negatives():
    """The synthetic manifests' event captions: M wordings of the caption as positives, and per
    positive rule-based negatives that keep the words but change the order, the attributes or the
    counts (never one of the positives)."""
    caption = "a loud beep, then a quiet beep"
    texts = sample_texts(_sample({"caption": caption}), m=2, n=2)
    assert texts.sources == ("caption", "rules")
    assert texts.positives == ["a loud beep, then a quiet beep", "the sound of a loud beep, then a quiet beep"]
    for pos, negs, kinds in zip(texts.positives, texts.negatives, texts.kinds):
        assert len(negs) == 2 and pos not in negs and not set(negs) & set(texts.positives)
        assert set(kinds) <= {"swap_order", "swap_attributes"}
        for neg in negs:  # the words of one of the caption's wordings, in another arrangement
            bags = [sorted(t.format(c=caption).replace(",", "").split()) for t in CAPTION_TEMPLATES]
            assert sorted(neg.replace(",", "").split()) in bags
    counted = sample_texts(_sample({"caption": "three beeps"}), m=1, n=1)
    assert counted.kinds == [["change_count"]] and "three" not in counted.negatives[0][0]
    with pytest.raises(ValueError, match="clap.positives=5 > 4 caption wordings"):
        sample_texts(_sample({"caption": "a siren"}), m=5, n=1)


def test_an_unusable_sample_drops_its_contrastive_batch_not_the_stage(manifest, tmp_path):
    dataset = AudioQADataset.from_manifest(manifest, max_windows=2)
    dataset.samples[1].audio.unlink()  # c1's file goes missing
    items = [dataset[i] for i in range(3)]
    batch = ClapCollator(caption_tokenizer(AF2Config.preset("tiny")), max_windows=2, m=2, n=1, max_length=48)(items)
    assert batch["ids"] == []  # equal B on every rank: the whole batch is skipped (by all ranks together)
    kinds = {s.id: s.kind for s in batch["skipped"]}
    assert kinds == {"c1": "missing", "c0": "contrastive_batch", "q0": "contrastive_batch"}
    assert all("c1: missing" in s.reason for s in batch["skipped"] if s.kind == "contrastive_batch")


def test_clap_stage_runs_past_a_missing_file(stage_config, synth, tmp_path):
    import shutil

    from tests.training.conftest import run

    data = tmp_path / "data"
    shutil.copytree(synth.parent, data)
    lines = (data / "manifest.jsonl").read_text().splitlines()
    (data / json.loads(lines[0])["audio"]).unlink()
    cfg = stage_config(
        "clap_missing",
        stage="clap",
        data={"sources": [{"manifest": str(data / "manifest.jsonl")}]},
        clap={"batch_size": 2, "positives": 1, "negatives": 1},
        train={"max_steps": 8, "progress": False},
    )
    proc = run(["-m", "training.train", "--config", str(cfg)])
    summary = json.loads((tmp_path / "clap_missing" / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["skipped_steps"] == 0
    assert "missing" in proc.stderr and "contrastive_batch" in proc.stderr  # the epoch's data report names them

"""The four generators end to end from the command line, against the scripted server."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest

from af2.data.llm.negatives import Negatives
from af2.data.manifest import load_manifest
from af2.data.skills import SKILLS
from af2.llm.pipeline import Record
from tests.llm.conftest import KEY, make_client, read_jsonl, run_cli
from tests.llm.fake_llm import scripted, well_behaved
from tests.llm.server import completion, error

CAPTIONS = [
    {"id": "c1", "audio": "clips/c1.wav", "caption": "A dog barks twice then a car passes"},
    {"id": "c2", "audio": "clips/c2.wav", "caption": "A loud siren then a quiet bell"},
    {"audio": "clips/c3.wav", "caption": "Rain falls then thunder rumbles"},
]  # no id: hashed
METADATA = [
    {
        "id": "m1",
        "audio": "clips/m1.wav",
        "duration": 10.0,
        "caption": "A man speaks, then a door slams",
        "tags": ["speech", "door"],
        "events": [{"label": "speech", "start": 0.0, "end": 6.0}, {"label": "door", "start": 7.5, "end": 8.0}],
        "transcript": "Please close the door.",
    },
    {
        "id": "m2",
        "audio": "clips/m2.wav",
        "start": 30.0,
        "end": 40.0,
        "caption": "Birds chirp at dawn",
        "tags": ["bird"],
    },
]
SEGMENTS = [
    "a doorbell rings",
    "footsteps on stairs",
    "a kettle whistles",
    "a dog barks",
    "a phone rings twice",
    "a door slams shut",
]
LONG = [
    {
        "id": f"r{i}",
        "audio": f"long/r{i}.wav",
        "duration": 300.0,
        "segments": [{"start": 50.0 * k, "end": 50.0 * k + 10, "caption": c} for k, c in enumerate(SEGMENTS)],
    }
    for i in range(2)
]


def write_input(tmp_path: Path, name: str, records: list[dict]) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def assert_secret_kept(result, out_dir: Path) -> None:
    """The key appears nowhere: not in the output, the log, the report or the cache."""
    assert KEY not in result.stdout + result.stderr
    for path in out_dir.iterdir():
        assert KEY.encode() not in path.read_bytes(), path


def test_paraphrase_end_to_end_and_reruns_cost_nothing(serve, tmp_path):
    server = serve(well_behaved)
    inp, out = write_input(tmp_path, "captions.jsonl", CAPTIONS), tmp_path / "out" / "para.jsonl"
    result = run_cli("paraphrase", inp, out, server, "--m", "4")
    assert result.returncode == 0, result.stderr
    lines = read_jsonl(out)
    assert sorted(line["caption"] for line in lines) == sorted(c["caption"] for c in CAPTIONS)
    for line in lines:
        assert len(line["paraphrases"]) == 4 and len(set(line["paraphrases"])) == 4
        assert line["audio"] == "../in/" + next(c["audio"] for c in CAPTIONS if c["caption"] == line["caption"])
        prov = line["provenance"]
        assert prov["model"] == "test-model" and prov["template"] == "paraphrase"
        assert prov["template_version"] == "v1" and prov["generated_at"].endswith("Z")
    assert {line["provenance"]["source_id"] for line in lines} >= {"c1", "c2"}
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["usage"]["requests"] == 3 and report["records"]["ok"] == 3
    assert "requests sent 3" in result.stderr and "cost $" in result.stderr
    assert_secret_kept(result, out.parent)

    before, seen = out.read_bytes(), server.count
    rerun = run_cli("paraphrase", inp, out, server, "--m", "4")  # all done: nothing to do
    assert rerun.returncode == 0 and server.count == seen and out.read_bytes() == before
    assert json.loads(Path(f"{out}.report.json").read_text())["records"]["already_done"] == 3

    out.unlink()  # the output is lost, the cache is not: regenerated without a request
    regen = run_cli("paraphrase", inp, out, server, "--m", "4")
    assert regen.returncode == 0 and server.count == seen
    assert sorted(out.read_bytes().splitlines()) == sorted(before.splitlines())
    usage = json.loads(Path(f"{out}.report.json").read_text())["usage"]
    assert usage["requests"] == 0 and usage["cache_hits"] == 3 and usage["cost_usd"] == 0


def test_negatives_end_to_end(serve, tmp_path):
    server = serve(well_behaved)
    inp, out = write_input(tmp_path, "captions.jsonl", CAPTIONS), tmp_path / "out" / "neg.jsonl"
    result = run_cli("negatives", inp, out, server, "--n", "3", "--rule-n", "0", "--price-in", "2.5")
    assert result.returncode == 0, result.stderr
    lines = {line["caption"]: line for line in read_jsonl(out)}
    assert len(lines) == 3
    c2 = lines["A loud siren then a quiet bell"]["negatives"]  # all four kinds apply: 3 asked, 3 kept
    assert [n["kind"] for n in c2] == ["swap_order", "swap_attributes", "change_count"]
    assert all(n["source"] == "llm" for n in c2)
    c1 = lines["A dog barks twice then a car passes"]["negatives"]  # no attribute: no swap_attributes
    assert {n["kind"] for n in c1} == {"swap_order", "change_count", "substitute_event"}
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["usage"]["requests"] == 3 and report["usage"]["cost_usd"] == pytest.approx(3 * 100 * 2.5 / 1e6)
    assert_secret_kept(result, out.parent)


def test_qa_end_to_end_loads_as_a_manifest(serve, tmp_path):
    server = serve(well_behaved)
    inp, out = write_input(tmp_path, "meta.jsonl", METADATA), tmp_path / "out" / "qa.jsonl"
    result = run_cli("qa", inp, out, server, "--per-record", "4", "--choices", "3")
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(out, strict=True)
    assert len(manifest.samples) == 8
    by_id = {s.id: s for s in manifest.samples}
    assert set(by_id) == {f"m{i}/q{k}" for i in (1, 2) for k in range(4)}
    for sample in manifest.samples:
        record = METADATA[int(sample.id[1]) - 1]
        assert sample.audio.resolve() == (inp.parent / record["audio"]).resolve()
        assert sample.skill in SKILLS and sample.extra["provenance"]["template"] == "qa"
        assert (sample.start, sample.end) == (record.get("start"), record.get("end"))
        if sample.choices:
            assert len(sample.choices) == 3 and sample.choices[sample.extra["answer_index"]] == sample.answer
    formats = [bool(by_id[f"m1/q{k}"].choices) for k in range(4)]
    assert formats in ([True, False] * 2, [False, True] * 2)  # mixed: alternating
    assert "contextual_speech_event_reasoning" not in {s.skill for s in manifest.samples if s.id.startswith("m2")}
    assert len({s.skill for s in manifest.samples if s.id.startswith("m1")}) == 4  # rotating skills
    assert_secret_kept(result, out.parent)


def test_qa_multiple_choice_options_are_shuffled(serve, tmp_path):
    server = serve(well_behaved)  # the model always lists the right answer first
    records = [{"id": f"s{i}", "audio": f"clips/s{i}.wav", "caption": f"A dog barks {i} times"} for i in range(6)]
    inp, out = write_input(tmp_path, "meta.jsonl", records), tmp_path / "out" / "qa.jsonl"
    result = run_cli("qa", inp, out, server, "--per-record", "2", "--format", "multiple_choice", "--choices", "4")
    assert result.returncode == 0, result.stderr
    samples = load_manifest(out, strict=True).samples
    assert len(samples) == 12
    for sample in samples:
        assert sorted(sample.choices) == sorted(["the right one"] + [f"wrong option {i}" for i in (1, 2, 3)])
        assert sample.choices[sample.extra["answer_index"]] == sample.answer == "the right one"
    indices = [s.extra["answer_index"] for s in samples]
    assert len(set(indices)) >= 3, indices  # the answer's place varies across lines
    wrong_orders = {tuple(c for c in s.choices if c != s.answer) for s in samples}
    assert len(wrong_orders) > 1  # the distractors are shuffled too


def test_longqa_end_to_end_loads_as_a_manifest(serve, tmp_path):
    server = serve(well_behaved)
    inp, out = write_input(tmp_path, "long.jsonl", LONG), tmp_path / "out" / "long.jsonl"
    result = run_cli("longqa", inp, out, server, "--per-recording", "2", "--format", "open", "--min-gap", "60")
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(out, strict=True)
    assert len(manifest.samples) == 4 and all(s.choices is None for s in manifest.samples)
    for sample in manifest.samples:
        assert sample.extra["needed_segments"] == [
            {"index": 0, "start": 0.0, "end": 10.0},
            {"index": 5, "start": 250.0, "end": 260.0},
        ]
    sent = json.loads(server.requests[0]["messages"][1]["content"].split("<input>")[1].split("</input>")[0])
    assert sent["min_gap_s"] == 60 and len(sent["segments"]) == 6 and sent["duration"] == 300.0
    assert_secret_kept(result, out.parent)


def test_rejects_and_bad_input_are_recorded_once(serve, tmp_path):
    bad_reply = completion(json.dumps({"paraphrases": ["A dog barks", "A cat meows"]}))
    server = serve(scripted({i: bad_reply for i in range(3)}))  # the caption c1 never gets valid ones
    inp = write_input(tmp_path, "captions.jsonl", CAPTIONS[:1] + [{"id": "x", "audio": "a.wav"}])
    with inp.open("a") as f:
        f.write("{not json\n" + json.dumps(CAPTIONS[0]) + "\n")  # a broken line and a duplicate id
    out = tmp_path / "out" / "para.jsonl"
    result = run_cli("paraphrase", inp, out, server, "--m", "2", "--max-repairs", "2")
    assert result.returncode == 0, result.stderr
    rejects = {r["source_id"]: r for r in read_jsonl(Path(f"{out}.rejects.jsonl"))}
    assert set(rejects) == {"c1", "x", "line-3", "line-4"} and read_jsonl(out) == []
    assert any("drops sound events" in r for r in rejects["c1"]["reasons"]) and rejects["c1"]["raw"]
    assert "no caption / answer / text" in rejects["x"]["reasons"][0]
    assert "duplicate id 'c1'" in rejects["line-4"]["reasons"][0] and server.count == 3
    assert run_cli("paraphrase", inp, out, server, "--m", "2").returncode == 0 and server.count == 3
    assert len(read_jsonl(Path(f"{out}.rejects.jsonl"))) == 4


def test_fatal_error_stops_the_job_and_a_flag_key_stays_secret(serve, tmp_path):
    server = serve(lambda index, body: error(401))
    inp, out = write_input(tmp_path, "captions.jsonl", CAPTIONS), tmp_path / "out" / "para.jsonl"
    flag_key = KEY + "-FROM-FLAG"
    result = run_cli(
        "paraphrase", inp, out, server, "--concurrency", "1", "--api-key", flag_key, "--log-level", "DEBUG"
    )
    assert result.returncode == 2 and "stopped" in result.stderr and server.count == 1
    assert server.headers[0]["authorization"] == f"Bearer {flag_key}"
    assert read_jsonl(out) == [] and json.loads(Path(f"{out}.report.json").read_text())["records"]["not_started"] == 2
    assert_secret_kept(result, out.parent)


class FakeRules:
    """Stands in for af2.data.negatives.make_negatives where the merge itself is tested."""

    def __init__(self):
        self.calls = []

    def __call__(self, caption, n, *, seed=0, kinds=None):
        self.calls.append((caption, n, seed, tuple(kinds)))
        made = [
            Namespace(text="A car passes then a dog barks twice", kind="swap_order"),  # the LLM's too
            Namespace(text="A dog barks twice then a bus passes", kind="substitute_event"),
        ]
        return Namespace(negatives=made, reasons=["swap_attributes: no attribute"])


def test_negatives_merge_llm_and_rules(serve):
    reply = {"negatives": [{"kind": "swap_order", "text": "A car passes then a dog barks twice"}]}
    server = serve(lambda index, body: completion(json.dumps(reply)))
    args = Namespace(n=1, rule_n=2, kinds="swap_order,substitute_event", seed=7, field=None, template_version=None)
    rules = FakeRules()
    pipeline = Negatives(args, make_client(server), make_negatives=rules)
    line = pipeline.process(Record("c1", CAPTIONS[0], 1)).lines[0]
    assert line["negatives"] == [
        {"text": "A car passes then a dog barks twice", "kind": "swap_order", "source": "llm"},
        {"text": "A dog barks twice then a bus passes", "kind": "substitute_event", "source": "rules"},
    ]
    assert line["provenance"]["rule_reasons"] == ["swap_attributes: no attribute"]
    assert rules.calls[0][:2] == (CAPTIONS[0]["caption"], 2) and rules.calls[0][3] == ("swap_order", "substitute_event")
    again = Negatives(args, make_client(server), make_negatives=FakeRules())
    assert again.process(Record("c1", CAPTIONS[0], 1)).lines[0]["negatives"] == line["negatives"]  # seeded


def test_negatives_with_the_real_rule_generator(serve, tmp_path):
    server = serve(well_behaved)
    inp, out = write_input(tmp_path, "captions.jsonl", CAPTIONS), tmp_path / "out" / "neg.jsonl"
    result = run_cli("negatives", inp, out, server, "--n", "2", "--rule-n", "3")
    assert result.returncode == 0, result.stderr
    lines = read_jsonl(out)
    assert len(lines) == 3
    for line in lines:
        negatives = line["negatives"]
        assert {n["source"] for n in negatives} == {"llm", "rules"}
        assert all(
            n["kind"] in ("swap_order", "swap_attributes", "change_count", "substitute_event") for n in negatives
        )
        assert len({n["text"].lower().rstrip(".") for n in negatives}) == len(negatives)  # merged, no repeats


def test_chained_jobs_keep_the_earlier_provenance_and_load_as_a_manifest(serve, tmp_path):
    from af2.data.llm.base import CAPTION_PROMPT
    from training.clap import sample_texts

    server = serve(well_behaved)
    inp, para = write_input(tmp_path, "captions.jsonl", CAPTIONS), tmp_path / "out" / "para.jsonl"
    assert run_cli("paraphrase", inp, para, server, "--m", "2").returncode == 0
    neg = tmp_path / "out" / "neg.jsonl"
    assert run_cli("negatives", para, neg, server, "--n", "2", "--rule-n", "0").returncode == 0
    for line in read_jsonl(neg):
        assert len(line["paraphrases"]) == 2 and line["negatives"] and line["audio"].startswith("../in/")
        assert line["provenance"]["pipeline"] == "negatives"
        assert line["provenance"]["previous"]["pipeline"] == "paraphrase"
    # audio + caption records become manifest lines: prompt, answer = caption, id (hashed when absent)
    samples = load_manifest(neg, strict=True).samples
    assert len(samples) == 3
    for sample in samples:
        record = next(c for c in CAPTIONS if c["caption"] == sample.answer)
        assert sample.prompt == CAPTION_PROMPT and sample.extra["caption"] == record["caption"]
        assert sample.audio.resolve() == (inp.parent / record["audio"]).resolve()
        assert sample.id == record.get("id", sample.extra["provenance"]["source_id"])
        assert sample.id == sample.extra["provenance"]["previous"]["source_id"]  # one id through the chain
        # ... and the AF-CLAP stage takes its positives and negatives from them
        texts = sample_texts(sample, m=2, n=2)
        assert texts.positives == sample.extra["paraphrases"] and texts.sources == ("paraphrases", "negatives")
        given = [n for n in sample.extra["negatives"] if n["text"] not in texts.positives][:2]
        assert texts.negatives == [[n["text"] for n in given]] * 2 and texts.kinds == [[n["kind"] for n in given]] * 2
    assert CAPTIONS[2]["caption"] in {s.answer for s in samples}  # the record without an id


def test_records_without_audio_are_not_given_manifest_keys(serve):
    server = serve(well_behaved)
    args = Namespace(m=2, dup_threshold=0.8, field=None, template_version=None, caption_prompt="Caption it.")
    from af2.data.llm.paraphrase import Paraphrase

    pipeline = Paraphrase(args, make_client(server))
    plain = pipeline.process(Record("t1", {"caption": "A dog barks twice then a car passes"}, 1)).lines[0]
    assert not {"prompt", "answer", "id"} & set(plain)
    with_audio = {"audio": "a.wav", "caption": "A dog barks twice then a car passes", "answer": "kept"}
    line = pipeline.process(Record("t2", with_audio, 2)).lines[0]
    assert (line["prompt"], line["answer"], line["id"]) == ("Caption it.", "kept", "t2")  # own keys win

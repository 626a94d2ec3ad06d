"""Small benchmark files in each benchmark's public format, with short generated audio."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def tone(path: Path, freq: float = 440.0, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def predictions(path: Path, by_id: dict[str, str]) -> Path:
    return write_jsonl(path, [{"id": k, "prediction": v} for k, v in by_id.items()])


MMAU_ROWS = [
    {
        "id": "s1",
        "question": "Based on the given audio, identify the source of the speaking voice.",
        "choices": ["Man", "Woman", "Child", "Robot"],
        "answer": "Man",
        "task": "sound",
        "difficulty": "medium",
    },
    {
        "id": "s2",
        "question": "Based on the given audio, identify the source of the speech.",
        "choices": ["A child", "A woman", "An adult man", "A teenager"],
        "answer": "A child",
        "task": "sound",
        "difficulty": "easy",
    },
    {
        "id": "m1",
        "question": "What instrument plays the melody?",
        "choices": ["Piano", "Violin", "Flute", "Drums"],
        "answer": "Violin",
        "task": "music",
        "difficulty": "hard",
    },
    {
        "id": "m2",
        "question": "What is the tempo?",
        "choices": ["Slow", "Moderate", "Fast", "Very fast"],
        "answer": "Fast",
        "task": "music",
        "difficulty": "easy",
    },
]


@pytest.fixture
def mmau_dir(tmp_path) -> Path:
    root = tmp_path / "mmau"
    rows = []
    for k, r in enumerate(MMAU_ROWS):
        tone(root / "test-mini-audios" / f"{r['id']}.wav", 300 + 100 * k)
        rows.append(
            {
                "id": r["id"],
                "audio_id": f"./test-mini-audios/{r['id']}.wav",
                "question": r["question"],
                "choices": r["choices"],
                "answer": r["answer"],
                "dataset": "AudioSet",
                "task": r["task"],
                "split": "test-mini",
                "category": "Reasoning",
                "sub-category": "Acoustic Source Inference",
                "difficulty": r["difficulty"],
            }
        )
    (root / "mmau-test-mini.json").write_text(json.dumps(rows, indent=2), "utf-8")
    return root


@pytest.fixture
def clothoaqa_dir(tmp_path) -> Path:
    root = tmp_path / "clothoaqa"
    tone(root / "audio_files" / "rain.wav", 200)
    tone(root / "audio_files" / "dog.wav", 600)
    rows = [
        ["rain.wav", "Is it raining?", "yes", "yes"],
        ["rain.wav", "Is it raining?", "yes", "yes"],
        ["rain.wav", "Is it raining?", "yes", "maybe"],
        ["rain.wav", "What is falling?", "water", "yes"],
        ["rain.wav", "What is falling?", "rain", "yes"],
        ["rain.wav", "What is falling?", "rain", "yes"],
        ["dog.wav", "Is a cat heard?", "no", "yes"],
        ["dog.wav", "Is a cat heard?", "no", "yes"],
        ["dog.wav", "Is a cat heard?", "no", "yes"],
        ["dog.wav", "How many dogs bark?", "two", "yes"],
        ["dog.wav", "How many dogs bark?", "two", "yes"],
        ["dog.wav", "How many dogs bark?", "two", "yes"],
    ]
    write_csv(root / "clotho_aqa_test.csv", ["file_name", "QuestionText", "answer", "confidence"], rows)
    return root


@pytest.fixture
def audiocaps_dir(tmp_path) -> Path:
    root = tmp_path / "audiocaps"
    tone(root / "audio" / "abc123.wav", 300)
    tone(root / "audio" / "Yxyz789.wav", 500)
    rows = [
        [101, "abc123", 30, "A dog barks loudly."],
        [102, "abc123", 30, "A dog is barking."],
        [103, "abc123", 30, "Dog barking repeatedly"],
        [201, "xyz789", 0, "Rain falls on a roof."],
        [202, "xyz789", 0, "Heavy rain is falling."],
    ]
    write_csv(root / "test.csv", ["audiocap_id", "youtube_id", "start_time", "caption"], rows)
    return root


@pytest.fixture
def clotho_dir(tmp_path) -> Path:
    root = tmp_path / "clotho"
    tone(root / "evaluation" / "birds.wav", 900)
    tone(root / "evaluation" / "engine.wav", 100)
    header = ["file_name", *(f"caption_{k}" for k in range(1, 6))]
    rows = [
        [
            "birds.wav",
            "Birds chirp in a forest.",
            "Many birds are singing.",
            "Birds chirping loudly.",
            "A bird sings in the trees.",
            "Small birds chirp outside.",
        ],
        [
            "engine.wav",
            "An engine idles.",
            "A car engine runs.",
            "A motor hums steadily.",
            "An engine is running.",
            "A vehicle engine idles loudly.",
        ],
    ]
    write_csv(root / "clotho_captions_evaluation.csv", header, rows)
    return root


@pytest.fixture
def muchomusic_dir(tmp_path) -> Path:
    root = tmp_path / "muchomusic"
    write_csv(
        root / "musiccaps" / "musiccaps-public.csv",
        ["ytid", "start_s", "end_s", "caption"],
        [["-0Gj8-vB1q4", 30, 40, "a calm piano piece"]],
    )
    write_csv(
        root / "sdd" / "song_describer.csv",
        ["caption_id", "track_id", "caption", "path"],
        [[1, 1037, "energetic rock", "37/1037.mp3"]],
    )
    tone(root / "musiccaps" / "audio" / "[-0Gj8-vB1q4]-[30-40].wav", 262)
    header = [
        "dataset_identifier",
        "dataset",
        "question",
        "correct_answer",
        "distractor_1_answer",
        "distractor_2_answer",
        "distractor_3_answer",
        "genre",
        "music_reasoning",
        "music_knowledge",
    ]
    rows = [
        [
            "-0Gj8-vB1q4_0.json",
            "musiccaps",
            "Which instrument leads?",
            "Piano",
            "Guitar",
            "Trumpet",
            "Cello",
            "classical",
            "[]",
            "['instrumentation']",
        ],
        ["1037.json", "sdd", "What is the mood?", "Energetic", "Calm", "Sad", "Sleepy", "rock", "['mood']", "[]"],
    ]
    write_csv(root / "muchomusic.csv", header, rows)
    return root


@pytest.fixture
def longaudio_dir(tmp_path) -> Path:
    root = tmp_path / "long"
    tone(root / "audio" / "scene.wav", 440, seconds=3.0)
    rows = [
        {
            "id": "la-0",
            "audio": "audio/scene.wav",
            "question": "What happens first?",
            "answer": "a beep",
            "category": "order",
        },
        {
            "id": "la-1",
            "audio": "audio/scene.wav",
            "question": "Summarise the recording.",
            "reference": "a steady tone",
            "start": 0.5,
            "end": 2.5,
        },
    ]
    return write_jsonl(root / "longaudiobench.jsonl", rows).parent

"""Fixtures of the server tests: a tiny saved model, audio as base64, and ``LiveServer`` (an app
under uvicorn in a thread, on 127.0.0.1 at a free port)."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

SR = 16000


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny AF2 with its xattn gates open (the audio changes the answer), saved with save_pretrained."""
    import torch

    from af2.data.tokens import tiny_tokenizer
    from af2.model import AF2Config, AudioFlamingo2

    torch.manual_seed(0)
    model = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    with torch.no_grad():
        for block in model.xattn.values():
            block.attn_gate.fill_(1.0)
            block.ff_gate.fill_(1.0)
    path = tmp_path_factory.mktemp("served-model")
    model.save_pretrained(path)
    return path


def wave(seconds: float, seed: int) -> np.ndarray:
    """``seconds`` of seeded noise, float32 mono at 16 kHz."""
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def encoded(x: np.ndarray, fmt: str = "wav", rate: int = SR) -> str:
    """A waveform as base64 ``fmt`` bytes (what an ``input_audio`` part holds)."""
    import soundfile as sf

    buf = io.BytesIO()
    subtype = {"wav": "FLOAT", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}.get(fmt)
    sf.write(buf, x.T if x.ndim == 2 else x, rate, format=fmt.upper(), subtype=subtype)
    return base64.b64encode(buf.getvalue()).decode()


def audio_message(text: str, data: str, fmt: str = "wav") -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "input_audio", "input_audio": {"data": data, "format": fmt}},
            ],
        }
    ]


class LiveServer:
    """``with LiveServer(app) as server:`` -> the app served at ``server.url`` until the block ends."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def wait_ready(self, timeout: float = 120.0) -> "LiveServer":
        import httpx

        deadline = time.monotonic() + timeout
        while httpx.get(self.url + "/health").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not become ready")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    @property
    def engine(self):
        return self.app.state.engines.engine

"""Helpers and fixtures of the server tests, imported by their modules: a tiny saved model, audio
as base64, the offline reference (``model.generate``), and ``LiveServer`` (an app under uvicorn in a
thread, on 127.0.0.1 at a free port)."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import numpy as np

SR = 16000


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


def decoded(data: str) -> tuple[np.ndarray, int]:
    """What the server reads from base64 audio: (waveform (T,) or (channels, T), rate)."""
    import soundfile as sf

    x, rate = sf.read(io.BytesIO(base64.b64decode(data)), dtype="float32", always_2d=True)
    x = np.ascontiguousarray(x.T)
    return (x[0] if x.shape[0] == 1 else x), rate


class Offline:
    """``model.generate`` on one request at a time (the reference the server must equal):
    ``offline(prompt, data, max_new_tokens)`` -> (text, completion tokens, finish reason)."""

    def __init__(self, model_dir, longest: int = 8):
        from af2.model import AudioFlamingo2
        from af2.model.processing_af2 import AudioFlamingo2Processor

        self.model = AudioFlamingo2.from_pretrained(str(model_dir)).eval()
        self.processor = AudioFlamingo2Processor.from_pretrained(str(model_dir))
        self.stops = set(self.model.generation_config.eos_token_id)
        self.longest, self.ids = longest, {}

    def tokens(self, prompt: str, data: str | None) -> list[int]:
        """The greedy answer ids, up to and with its first stop token (at most ``longest``)."""
        import torch

        key = (prompt, data)
        if key not in self.ids:
            if data is None:
                inputs = self.processor(text=prompt, audio_token=False)
            else:
                x, rate = decoded(data)
                inputs = self.processor(text=prompt, audio=x, sampling_rate=rate)
            with torch.no_grad():
                out = self.model.generate(**inputs, max_new_tokens=self.longest, do_sample=False)
            new = out[0, inputs["input_ids"].shape[1] :].tolist()
            end = next((i + 1 for i, t in enumerate(new) if t in self.stops), len(new))
            self.ids[key] = new[:end]
        return self.ids[key]

    def __call__(self, prompt: str, data: str | None, max_new_tokens: int) -> tuple[str, int, str]:
        assert max_new_tokens <= self.longest
        ids = self.tokens(prompt, data)[:max_new_tokens]
        reason = "stop" if ids and ids[-1] in self.stops else "length"
        return self.processor.decode(ids, skip_special_tokens=True), len(ids), reason

"""A real chat-completions HTTP server on 127.0.0.1 with scripted replies, for the tests.

``ScriptedServer(responder)`` listens on an ephemeral port and answers
``POST /v1/chat/completions`` with ``responder(index, body) -> Reply``. It records every
request body, counts the ones answered with 200, can hold requests unanswered from a given
index on (``hang_after``; for killing a client mid-request) and shuts itself down after
``lifetime`` seconds whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a dict is sent as JSON, a str as it is
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


def completion(content: str, *, finish_reason: str = "stop", usage: bool = True) -> Reply:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "test-model",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content}}],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": 100,
            "completion_tokens": 10 + len(content) // 4,
            "total_tokens": 110 + len(content) // 4,
        }
    return Reply(200, body)


def error(status: int, headers: dict | None = None) -> Reply:
    return Reply(status, {"error": {"message": f"scripted {status}", "type": "test"}}, headers or {})


def body_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class ScriptedServer:
    def __init__(self, responder: Callable[[int, dict], Reply], *, lifetime: float = 120.0):
        self.responder = responder
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.answered: list[str] = []  # body hashes of the requests answered with 200
        self.hang_after: int | None = None
        self.in_flight = self.max_in_flight = 0
        self._cond = threading.Condition()
        self._release = threading.Event()
        self._stopped = threading.Event()
        self.lifetime = lifetime
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._cond:
            return len(self.requests)

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= n, timeout)

    def release(self) -> None:
        """Stop holding requests; the held ones are dropped without a reply."""
        self.hang_after = None
        self._release.set()

    def start(self) -> "ScriptedServer":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self._release.set()
            self._timer.cancel()
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if not self.path.endswith("/chat/completions"):
                    return self._send(error(404))
                with server._cond:
                    index = len(server.requests)
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server._cond.notify_all()
                    hang = server.hang_after is not None and index >= server.hang_after
                if hang:
                    server._release.wait(server.lifetime)
                    self.close_connection = True
                    return
                with server._cond:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.responder(index, body)
                    if reply.delay:
                        server._stopped.wait(reply.delay)
                    sent = self._send(reply)
                finally:
                    with server._cond:
                        server.in_flight -= 1
                if sent and reply.status == 200:
                    with server._cond:
                        server.answered.append(body_hash(body))

            def _send(self, reply: Reply) -> bool:
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data.encode())))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data.encode())
                    self.wfile.flush()
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    return False

        return Handler

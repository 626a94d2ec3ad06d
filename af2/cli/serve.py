"""``af2 serve --model DIR [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--device ...]``.

An OpenAI-compatible chat server for a saved AF2 model (a folder written by
``AudioFlamingo2.save_pretrained``): ``POST /v1/chat/completions`` (text and ``input_audio``
parts, ``stream: true`` for server-sent events), ``GET /v1/models``, ``GET /health``. The socket
opens at once and the model loads behind it (/health answers 503 until it is ready). With
``--api-key`` (or the environment variable AF2_API_KEY) every /v1 request needs
``Authorization: Bearer KEY``. SIGTERM or Ctrl-C: new connections are refused, the requests
in flight finish (up to --shutdown-timeout seconds), exit status 0. One JSON line per request
on stderr (logger ``af2.serve.requests``). See docs/server.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

from af2.cli.args import add_device, add_log_level, input_dir, nonnegative_int, positive_float, positive_int
from af2.errors import ConfigError, InputError

HELP = "an OpenAI-compatible chat server for a saved AF2 model (text + audio, streaming)"
API_KEY_ENV = "AF2_API_KEY"


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    parser.add_argument(
        "--model", required=True, type=input_dir, metavar="DIR", help="directory written by save_pretrained"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", metavar="ADDRESS", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=nonnegative_int,
        default=8000,
        metavar="N",
        help="port (default 8000; 0: a free one, logged at start)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help=f"require 'Authorization: Bearer KEY' on /v1 routes (default: the {API_KEY_ENV} environment "
        "variable; none: no key needed)",
    )
    parser.add_argument(
        "--served-model-name", default=None, metavar="NAME", help="the model name clients pass (default: --model)"
    )
    add_device(parser)
    parser.add_argument(
        "--max-batch-size", type=positive_int, default=8, metavar="N", help="requests decoded together (default 8)"
    )
    parser.add_argument(
        "--max-queue",
        type=positive_int,
        default=64,
        metavar="N",
        help="requests waiting for a slot; more get 429 (default 64)",
    )
    parser.add_argument(
        "--max-audio-seconds",
        type=positive_float,
        default=None,
        metavar="S",
        help="longer audio gets 413 (default: the model's max_windows x 10 s)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=512,
        metavar="N",
        help="the most tokens an answer may have, and the length when a request gives no max_tokens (default 512)",
    )
    parser.add_argument(
        "--max-prompt-tokens",
        type=positive_int,
        default=None,
        metavar="N",
        help="longer prompts get 400 (default: the model's context minus --max-new-tokens)",
    )
    parser.add_argument(
        "--allow-text-only",
        action="store_true",
        help="answer requests without audio (the LLM alone); by default they get 400",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="run the decode step eagerly (default: the engine decides)"
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, seconds the requests in flight may take to finish (default 30)",
    )
    add_log_level(parser)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads (so a taken port fails at once)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: {err.strerror or err}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def engine_loader(model_dir, device: str, config):
    """A function that loads the model in ``model_dir`` onto ``device`` and builds its (not yet
    started) engine with ``config`` (an :class:`af2.serve.engine.EngineConfig`)."""

    def load():
        from af2.eval import infer
        from af2.model.processing_af2 import AudioFlamingo2Processor
        from af2.serve.engine import Engine

        model = infer.load_model(str(model_dir), device)
        return Engine(model, AudioFlamingo2Processor.from_pretrained(str(model_dir)), config)

    return load


def engine_config(args: argparse.Namespace):
    from af2.serve.engine import EngineConfig

    return EngineConfig(
        max_batch_size=args.max_batch_size,
        max_queue=args.max_queue,
        max_audio_seconds=args.max_audio_seconds,
        max_new_tokens=args.max_new_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        compile=False if args.no_compile else None,
    )


def main(args: argparse.Namespace) -> int:
    from af2._deps import require

    require("af2 serve", "serve")
    import torch
    import uvicorn

    from af2.serve.app import create_app

    if not (args.model / "config.json").is_file():
        raise InputError(f"--model {args.model}: no config.json (not a folder written by save_pretrained)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available here")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    name = args.served_model_name or str(args.model)
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    log = logging.getLogger("af2.serve")
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    load_failure: list[BaseException] = []
    server: uvicorn.Server | None = None

    def stop_on_load_error(err: BaseException) -> None:
        load_failure.append(err)
        if server is not None:
            server.should_exit = True

    app = create_app(
        engine_loader(args.model, device, engine_config(args)),
        model_name=name,
        api_key=api_key,
        max_new_tokens=args.max_new_tokens,
        max_audio_seconds=args.max_audio_seconds,
        require_audio=not args.allow_text_only,
        shutdown_timeout=args.shutdown_timeout,
        on_load_error=stop_on_load_error,
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(max(1, round(args.shutdown_timeout))),
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers
    # in place that ends here, after the graceful shutdown, with status 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "listening on http://%s:%d (model %s on %s, API key %s); loading the model",
        host, port, name, device, "required" if api_key else "not required",
    )  # fmt: skip
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if load_failure:
        err = load_failure[0]
        raise InputError(f"--model {args.model}: the model failed to load: {type(err).__name__}: {err}")
    print("af2 serve: stopped", file=sys.stderr)
    return 0

"""Chat completion requests in OpenAI's format, checked with pydantic, -> a GenerationRequest.

A request names the served ``model`` and holds ``messages``; each message's ``content`` is a
string or a list of parts ``{"type": "text", "text": ...}`` and ``{"type": "input_audio",
"input_audio": {"data": base64, "format": "wav"|"mp3"|...}}``. The prompt is the text of the
last user message; the audio is the request's one ``input_audio`` part, in whichever user
message it is (AF2 answers one question about one audio; earlier turns and system messages are
not part of the prompt). Unknown fields, bad values, ``n`` other than 1 and the penalties or
logprobs AF2 does not implement are refused with 400, naming the field (docs/server.md).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from af2.serve.errors import APIError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class InputAudio(_Strict):
    data: str
    format: str


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


PARTS = {"text": TextPart, "input_audio": AudioPart}


class Message(BaseModel):
    """One turn; fields AF2 has no use for (``name``, ``tool_calls``, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[dict[str, Any]], None] = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    seed: Optional[int] = None
    stop: Union[str, list[str], None] = None
    n: Optional[int] = None
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = None
    frequency_penalty: Optional[float] = None
    presence_penalty: Optional[float] = None
    logprobs: Optional[bool] = None
    metadata: Optional[dict[str, str]] = None
    store: Optional[bool] = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def parse_request(body: bytes) -> ChatCompletionRequest:
    """The request body -> ChatCompletionRequest; 400 (``invalid_json`` or the field at fault)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise APIError(400, f"the request body is not valid JSON ({err})", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        req = ChatCompletionRequest.model_validate(data)
    except ValidationError as err:
        raise _invalid(err) from None
    _check_supported(req)
    return req


def _invalid(err: ValidationError, prefix: str = "") -> APIError:
    """The most specific error of a ValidationError (the deepest field) as a 400."""
    first = max(err.errors(), key=lambda e: len(e["loc"]))
    loc = [str(p) for p in first["loc"] if isinstance(p, int) or "[" not in str(p) and p not in ("str", "none")]
    param = ".".join([prefix, *loc] if prefix else loc) or None
    if first["type"] == "extra_forbidden":
        return APIError(400, f"unrecognized request argument supplied: {param}", code="unknown_parameter", param=param)
    return APIError(400, f"{param}: {first['msg']}", code="invalid_value", param=param)


def parts(message: Message, index: int) -> list:
    """A message's content as TextPart / AudioPart objects (a string is one text part)."""
    if message.content is None:
        return []
    if isinstance(message.content, str):
        return [TextPart(type="text", text=message.content)]
    out = []
    for j, raw in enumerate(message.content):
        where = f"messages.{index}.content.{j}"
        kind = PARTS.get(raw.get("type"))
        if kind is None:
            raise APIError(
                400,
                f"{where}.type: content parts of type {raw.get('type')!r} are not supported "
                f"(supported: {', '.join(PARTS)})",
                code="invalid_value",
                param=f"{where}.type",
            )
        try:
            out.append(kind.model_validate(raw))
        except ValidationError as err:
            raise _invalid(err, where) from None
    return out


def _unsupported(param: str, why: str) -> APIError:
    return APIError(400, f"{param}: {why}", code="unsupported_value", param=param)


def _check_supported(req: ChatCompletionRequest) -> None:
    if req.n not in (None, 1):
        raise _unsupported("n", f"only n=1 is supported, got {req.n}")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name) not in (None, 0, 0.0):
            raise _unsupported(name, "penalties are not supported (only 0)")
    if req.logprobs:
        raise _unsupported("logprobs", "logprobs are not supported")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > 4:
        raise _unsupported("stop", f"at most 4 stop strings, got {len(stops)}")
    if any(s == "" for s in stops):
        raise APIError(400, "stop: a stop string must not be empty", code="invalid_value", param="stop")
    if req.max_tokens is not None and req.max_completion_tokens is not None:
        if req.max_tokens != req.max_completion_tokens:
            raise APIError(
                400,
                "max_tokens and max_completion_tokens differ; give one",
                code="invalid_value",
                param="max_completion_tokens",
            )


def stop_strings(req: ChatCompletionRequest) -> tuple[str, ...]:
    return (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())


def prompt_and_audio(req: ChatCompletionRequest) -> tuple[str, Optional[tuple[InputAudio, str]]]:
    """The prompt text (the last user message's text parts, joined) and the request's audio part
    with its field path, or None. 400 with no user message or more than one audio."""
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    if not users:
        raise APIError(400, "messages: no user message", code="invalid_value", param="messages")
    audio: list[tuple[InputAudio, str]] = []
    contents = [parts(m, i) for i, m in enumerate(req.messages)]
    for i, (m, content) in enumerate(zip(req.messages, contents)):
        for j, part in enumerate(content):
            if not isinstance(part, AudioPart):
                continue
            if m.role != "user":
                raise APIError(
                    400,
                    f"messages.{i}: audio is only read from user messages, not {m.role}",
                    code="invalid_value",
                    param=f"messages.{i}.content.{j}",
                )
            audio.append((part.input_audio, f"messages.{i}.content.{j}.input_audio"))
    if len(audio) > 1:
        raise APIError(
            400, f"at most one input_audio per request, got {len(audio)}", code="too_many_audio", param=audio[1][1]
        )
    text = "".join(p.text for p in contents[users[-1]] if isinstance(p, TextPart))
    return text, (audio[0] if audio else None)

"""The server's errors in OpenAI's JSON shape: ``{"error": {"message", "type", "param", "code"}}``.

Every refusal is an :class:`APIError` raised anywhere below the route; the app turns it into
this body with its HTTP status. The types follow the status (docs/server.md has the table).
"""

from __future__ import annotations

from typing import Optional

#: HTTP status -> OpenAI error ``type``.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable_error",
}


class APIError(Exception):
    """A request refused with ``status``; ``code``: a short machine-readable reason, ``param``:
    the request field at fault (dotted, e.g. ``messages.0.content.1.input_audio.data``)."""

    def __init__(self, status: int, message: str, *, code: Optional[str] = None, param: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = int(status), message, code, param

    def body(self) -> dict:
        return error_body(self.status, self.message, code=self.code, param=self.param)


def error_body(status: int, message: str, *, code: Optional[str] = None, param: Optional[str] = None) -> dict:
    """The JSON body of an error response."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(int(status), "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def from_rejection(rejected, params: Optional[dict] = None) -> APIError:
    """A :class:`af2.serve.protocol.RequestRejected` from the engine -> APIError (same status);
    ``params`` renames the engine's field names to the request's (``{"prompt": "messages"}``)."""
    param = (params or {}).get(rejected.param) or rejected.param
    return APIError(rejected.status, rejected.message, code=rejected.code, param=param)

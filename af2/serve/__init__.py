"""Serving: the continuous-batching decoding engine (af2.serve.engine) and the OpenAI-compatible
HTTP server (af2.serve.app); af2.serve.protocol is what they exchange."""

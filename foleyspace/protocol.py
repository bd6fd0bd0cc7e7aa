"""The server wire protocol (version 1): msgpack maps over ZeroMQ ROUTER/DEALER.

Pure Python + msgpack, so the thin client imports it inside Blender's or Resolve's Python.
See ``docs/protocol.md`` for the whole protocol. Nothing here ever unpickles.

* request  ``{"v": 1, "op": str, "id": int|str, "token": str, ...fields}``
* reply    ``{"v": 1, "re": id, "ok": True, ...}`` or ``{"v": 1, "re": id, "ok": False,
  "error": {"code": str, "message": str}}``
* event    ``{"v": 1, "event": "progress"|"done"|"failed"|"cancelled", "job": str, ...}``
  (the submit reply is the ``accepted`` event: ``{"ok": True, "event": "accepted", "job": ...}``)
"""

from __future__ import annotations

from typing import Any

import msgpack

PROTOCOL_VERSION = 1
#: Largest message the server reads (bytes); bigger ones are answered with ``too_large``.
MAX_MESSAGE_BYTES = 1 << 20
#: Hard limit set on the socket: bigger frames make ZeroMQ drop the sender's connection.
SOCKET_MAX_MESSAGE_BYTES = 16 << 20
DEFAULT_PORT = 5571
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"

OPS = ("hello", "submit", "status", "cancel", "list", "result", "ping", "shutdown")
TERMINAL_STATES = ("done", "failed", "cancelled")


class ProtocolError(Exception):
    """A message that does not follow the protocol; ``code`` names the kind."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def pack(message: dict[str, Any]) -> bytes:
    """Encode a message (adds the protocol version)."""
    return msgpack.packb({"v": PROTOCOL_VERSION, **message}, use_bin_type=True)


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack ext type {code} is not allowed")


def unpack(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Decode and check the envelope of one message; raise :class:`ProtocolError`."""
    if len(data) > max_bytes:
        raise ProtocolError("too_large", f"message of {len(data)} bytes exceeds {max_bytes}")
    try:
        message = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True,
            max_str_len=max_bytes, max_bin_len=max_bytes,
            max_array_len=100_000, max_map_len=10_000, max_ext_len=0, ext_hook=_no_ext,
        )
    except Exception as exc:  # msgpack raises many types for garbage
        raise ProtocolError("malformed", f"not a msgpack message ({exc.__class__.__name__})") from exc
    if not isinstance(message, dict):
        raise ProtocolError("malformed", "a message must be a map")
    version = message.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # never repr the value: it may nest 1000 deep
        shown = repr(version) if type(version) is int else f"of type {type(version).__name__}"
        raise ProtocolError("version", f"protocol version {shown} is not {PROTOCOL_VERSION}")
    return message


def error_reply(request_id: Any, code: str, message: str) -> dict[str, Any]:
    """The reply body for a failed request."""
    return {"re": request_id, "ok": False, "error": {"code": code, "message": message}}

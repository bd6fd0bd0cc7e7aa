"""Errors the user can act on.

Every failure caused by the input or the environment (missing file, no audio track, unwritable
output, ...) is a :class:`FoleySpaceError` with a one-line message; front ends (CLI, server,
plug-ins) print that message and exit with :attr:`FoleySpaceError.exit_code` instead of a
traceback.
"""

from __future__ import annotations

from typing import Any


def shown(value: Any, limit: int = 80) -> str:
    """``repr`` of an untrusted value for a message, bounded in depth and length (a list nested
    1000 deep must not recurse, a megabyte of text must not be echoed)."""
    import reprlib

    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother, bounded.maxlist, bounded.maxdict = 2, limit, limit, 4, 4
    text = bounded.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FoleySpaceError(Exception):
    """An error caused by input, configuration or environment; ``str(err)`` is one line."""

    exit_code: int = 2
    code: str = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(" ".join(message.split()))
        if code is not None:
            self.code = code


class InputError(FoleySpaceError):
    """The input media (video, audio, range) cannot be used."""

    code = "bad_input"


class OutputError(FoleySpaceError):
    """The output cannot be written."""

    code = "bad_output"


class Cancelled(FoleySpaceError):
    """The job was cancelled through its cancel check."""

    code = "cancelled"
    exit_code = 130

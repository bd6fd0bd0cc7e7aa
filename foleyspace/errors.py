"""Errors the user can act on.

Every failure caused by the input or the environment (missing file, no audio track, unwritable
output, ...) is a :class:`FoleySpaceError` with a one-line message; front ends (CLI, server,
plug-ins) print that message and exit with :attr:`FoleySpaceError.exit_code` instead of a
traceback.
"""

from __future__ import annotations


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

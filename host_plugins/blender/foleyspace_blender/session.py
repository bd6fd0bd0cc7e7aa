"""The add-on's one session: jobs in flight, the server it started, the panel's message line.

:func:`begin` makes the :class:`Session` when the add-on registers and :func:`end` drops it
when it unregisters; operators and the panel reach it through :func:`current`. The session's
timers (``bpy.app.timers``) are bound to it with :func:`functools.partial` by
:meth:`Session.start_timer`, so a timer never looks the session up and dies with it.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import bpy

if TYPE_CHECKING:
    from .jobs import StripJob
    from .poller import Poller
    from .server import Client

log = logging.getLogger(__name__)

#: A timer function of the session: returns the next interval in seconds, or None to stop.
TimerFn = Callable[["Session"], "float | None"]


@dataclass
class Session:
    """State shared by the operators, the panel and the timers."""

    client: Client | None = None
    #: Jobs of the open .blend (``file_key``), polled and placed.
    jobs: dict[str, StripJob] = field(default_factory=dict)
    #: Jobs of other files, by file key: not polled, taken back when that file is opened again.
    parked: dict[str, dict[str, StripJob]] = field(default_factory=dict)
    #: The open file's key (``binding.file_key``); set when the add-on registers and on each load.
    file_key: str = ""
    #: The thread that talks to the server for the timer (made with the first job).
    poller: Poller | None = None
    message: str = ""
    message_is_error: bool = False
    server_text: str = "not checked"
    server_ok: bool | None = None
    server_proc: subprocess.Popen | None = None
    server_log: str = ""
    server_address: str | None = None
    #: The backends the server offers, from its last ``hello`` (``backends.capabilities``);
    #: empty until a server was checked.
    capabilities: dict = field(default_factory=dict)
    server_started: float = 0.0
    timers: dict[TimerFn, Callable[[], float | None]] = field(default_factory=dict)

    def set_message(self, text: str, error: bool = False) -> None:
        """Show one line in the panel (and in the log: errors as warnings)."""
        self.message, self.message_is_error = text, error
        (log.warning if error else log.info)("FoleySpace: %s", text)
        redraw()

    def start_timer(self, fn: TimerFn, first_interval: float) -> None:
        """Register ``fn(self)`` with ``bpy.app.timers`` unless it already is."""
        timer = self.timers.setdefault(fn, functools.partial(fn, self))
        if not bpy.app.timers.is_registered(timer):
            bpy.app.timers.register(timer, first_interval=first_interval, persistent=True)

    def timer_registered(self, fn: TimerFn) -> bool:
        """True while ``fn`` runs as this session's timer."""
        timer = self.timers.get(fn)
        return timer is not None and bpy.app.timers.is_registered(timer)

    def close(self) -> None:
        """Stop the timers and close the client; a started server keeps running."""
        for timer in self.timers.values():
            if bpy.app.timers.is_registered(timer):
                bpy.app.timers.unregister(timer)
        self.timers.clear()
        if self.poller is not None:
            self.poller.stop()  # a daemon thread: it ends within one request timeout, unwaited
        self.poller = None
        if self.client is not None:
            self.client.close()
        self.client = None
        self.jobs.clear()
        self.parked.clear()


_current: Session | None = None


def begin() -> Session:
    """Make the session (on register)."""
    global _current
    if _current is not None:
        _current.close()
    _current = Session()
    return _current


def end() -> None:
    """Close and drop the session (on unregister)."""
    global _current
    if _current is not None:
        _current.close()
    _current = None


def current() -> Session:
    """The add-on's session; raises :class:`RuntimeError` while the add-on is not registered."""
    if _current is None:
        raise RuntimeError("the FoleySpace add-on is not registered")
    return _current


def redraw() -> None:
    """Ask Sequencer areas to redraw (the panel shows timer-made changes)."""
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()) or ():
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def one_line(exc: BaseException) -> str:
    """An exception as one line of text."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= 600 else text[:597] + "..."  # room for a server's how-to-get-the-model hint

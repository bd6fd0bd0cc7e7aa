"""Server messages in Blender's terms: no command-line flags in anything a Blender user reads.

The server's messages are written for the command line (``--audio FILE``, ``--in``, ``--out``).
:func:`for_blender` rewrites the ones a strip's job can meet into what the add-on offers
(a sound strip with a chosen video, the strip's handles); any other flag left in a message is
dropped from it. Pure functions, no ``bpy`` (unit-tested outside Blender).
"""

from __future__ import annotations

import re

#: (pattern, Blender wording); the first match wins. ``{path}`` is the file the server named.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), w) for p, w in (
    (r"^(?P<path>.*?): the clip has no audio track",
     "this movie strip has no sound: add a sound strip of the sound file, choose this movie as its video "
     "(FoleySpace panel ▸ Choose Video) and spatialize the sound strip"),
    (r"^(?P<path>.*?): the audio track holds no samples",
     "the movie's sound track is empty: spatialize a sound strip with this movie as its video instead"),
    (r"^(?P<path>.*?): --audio-start .* is past the end of the file",
     "the sound strip starts past the end of its sound file ({path}); trim it to the sound"),
    (r"^--in .* past the end of the clip",
     "the strip starts past the end of its movie file; trim the strip to the movie"),
    (r"^--out .* past the end of the clip",
     "the strip ends past the end of its movie file; trim the strip to the movie"),
    (r"^--in .* is negative", "the strip starts before its movie; trim the strip to the movie"),
))
_FLAG = re.compile(r"[;,(]?\s*(pass |use |with |see |give )?--[a-z][a-z0-9-]*( [A-Z][A-Z0-9,@\[\]]*)?\)?")


def for_blender(message: str) -> str:
    """``message`` (one line from the server) reworded for a Blender user; never names a CLI flag."""
    text = " ".join(str(message).split())
    for pattern, wording in _RULES:
        m = pattern.search(text)
        if m:
            return wording.format(path=m.groupdict().get("path") or "")
    if "--" in text:
        text = _FLAG.sub("", text).strip(" ;,")
    return text

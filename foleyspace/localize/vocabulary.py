"""Offline vocabularies: label lists scored over a clip when no label is given (paper §III-A, §V-G).

Shipped as package data in ``foleyspace/vocab/`` (sources and licences in its ``SOURCES.md``):
``coco`` (80 detection classes), ``imagenet`` (1000), ``vggsound`` (309) and ``audioset`` (527).
A user file (one label per line, ``#`` comments) works the same way.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from foleyspace.errors import InputError

VOCABULARIES = ("coco", "imagenet", "vggsound", "audioset")
#: The most labels a vocabulary file may hold (text-embedding cost grows with it).
MAX_LABELS = 5000


def parse_labels(text: str) -> list[str]:
    """Labels from a vocabulary text: one per line; blank lines and ``#`` comments skipped;
    repeats dropped (first kept)."""
    labels: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line not in labels:
            labels.append(line)
    return labels


def load_vocabulary(name: str) -> list[str]:
    """The labels of a shipped vocabulary (``coco``…) or of a file; :class:`InputError` for an
    unknown name, an unreadable or empty file."""
    if name in VOCABULARIES:
        return parse_labels(resources.files("foleyspace.vocab").joinpath(f"{name}.txt").read_text(encoding="utf-8"))
    path = Path(name).expanduser()
    if not path.suffix and not path.exists():
        raise InputError(f"unknown vocabulary {name!r}: use {', '.join(VOCABULARIES)} or a file of labels")
    try:
        labels = parse_labels(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the vocabulary file ({getattr(exc, 'strerror', None) or exc})") from None
    if not labels:
        raise InputError(f"{path}: the vocabulary file holds no labels")
    if len(labels) > MAX_LABELS:
        raise InputError(f"{path}: {len(labels)} labels; at most {MAX_LABELS}")
    return labels


def split_label(text: str) -> list[str]:
    """``--label "dog, puppy"`` → ``["dog", "puppy"]``: synonyms of one sounding object."""
    return [part.strip() for part in text.split(",") if part.strip()]

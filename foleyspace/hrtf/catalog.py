"""Measured HRTF sets FoleySpace can fetch, where they go, and names for ``--hrtf`` (standard library only).

A fetched set is named ``SET:SUBJECT`` wherever a SOFA file is accepted (``--hrtf``, the job
spec's ``options.hrtf``): ``hutubs:96`` (HUTUBS participant pp96), ``sadie:H3`` (SADIE II
subject H3), ``sadie:D1`` (its Neumann KU100 dummy head). Anything else is a file path (write
``./hutubs:96`` for a file of that name). Fetched files live in the HRTF folder:
``FOLEYSPACE_HRTF_DIR`` if set, else ``hrtf`` in the user data folder
(``$XDG_DATA_HOME/foleyspace/hrtf`` on Linux; see :func:`foleyspace.models.user_data_dir`).

:func:`fetch` downloads one subject's file (from a zip where the set only ships zips) into a
temporary file beside the target, checks it with :func:`foleyspace.hrtf.sofa.read_sofa`, and
renames it into place, so an interrupted or bad download leaves nothing behind. Offline it fails
with one line naming the URL and exactly where to put the file.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foleyspace.atomic_file import atomic_path
from foleyspace.errors import FoleySpaceError
from foleyspace.models import user_data_dir

log = logging.getLogger(__name__)

#: Seconds a download may wait for the server (connecting, and between two reads).
TIMEOUT_S = 60.0
#: Bytes read at a time while downloading.
CHUNK = 1 << 16


class HrtfError(FoleySpaceError):
    """An HRTF set that is unknown, not fetched, or cannot be fetched; the message says the fix."""

    code = "missing_hrtf"


@dataclass(frozen=True)
class HrtfSet:
    """One downloadable database of measured HRIRs, one SOFA file per subject.

    Attributes:
        name: the ``SET`` of ``SET:SUBJECT`` (``hutubs``).
        title: what it is, for listings.
        licence: the data's licence (users must honour it; we only download).
        source: the database's home (landing page or DOI).
        subjects: the valid subject ids, as written after the colon.
        url: download URL with ``{subject}``: the SOFA file itself, or a zip holding it.
        member: for a zip, the file name inside it (matched as a path suffix), with ``{subject}``;
            ``None`` when ``url`` is the SOFA file.
        file: the local file name, with ``{subject}``.
        prefix: an optional prefix users may write before the subject id (``pp`` in ``pp96``).
    """

    name: str
    title: str
    licence: str
    source: str
    subjects: tuple[str, ...]
    url: str
    file: str
    member: str | None = None
    prefix: str = ""

    def subject(self, text: str) -> str:
        """The canonical subject id of ``text`` (``96``, ``pp96`` → ``96``; ``h3`` → ``H3``).

        Raises:
            HrtfError: not a subject of this set (the message lists the valid ones).
        """
        given = str(text).strip()
        if self.prefix and given.lower().startswith(self.prefix):
            given = given[len(self.prefix):]
        for known in self.subjects:
            if given.upper() == known.upper() or (given.isdigit() and known.isdigit() and int(given) == int(known)):
                return known
        raise HrtfError(f"{self.name}: no subject {text!r}; subjects are {self.subject_range()}")

    def subject_range(self) -> str:
        """The subjects in words, e.g. ``1-96`` or ``D1, D2, H3-H20``."""
        runs: list[list[str]] = []
        for s in self.subjects:
            if runs and _next_of(runs[-1][-1]) == s:
                runs[-1].append(s)
            else:
                runs.append([s])
        return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(r) for r in runs)

    def url_for(self, subject: str) -> str:
        return self.url.format(subject=subject)

    def member_for(self, subject: str) -> str | None:
        return None if self.member is None else self.member.format(subject=subject)

    def path_for(self, subject: str, root: Path | None = None) -> Path:
        """Where subject's file lives once fetched (``<HRTF folder>/<set>/<file>``)."""
        return (root or hrtf_dir()) / self.name / self.file.format(subject=subject)


def _next_of(subject: str) -> str:
    m = re.fullmatch(r"([A-Za-z]*)(\d+)", subject)
    return f"{m.group(1)}{int(m.group(2)) + 1}" if m else ""


#: The sets ``foleyspace hrtf fetch`` knows.
CATALOG: dict[str, HrtfSet] = {s.name: s for s in (
    HrtfSet(
        name="hutubs",
        title="HUTUBS (TU Berlin): measured HRIRs of 96 people, 440 directions, 44.1 kHz, 256 taps, 1.47 m",
        licence="CC BY 4.0",
        source="https://doi.org/10.14279/depositonce-8487",
        subjects=tuple(str(i) for i in range(1, 97)),
        url="https://sofacoustics.org/data/database/hutubs/pp{subject}_HRIRs_measured.sofa",
        file="pp{subject}_HRIRs_measured.sofa",
        prefix="pp",
    ),
    HrtfSet(
        name="sadie",
        title="SADIE II (University of York): D1 Neumann KU100, D2 KEMAR, H3-H20 people; the 48 kHz, 256-tap files",
        licence="Apache-2.0",
        source="https://www.york.ac.uk/sadie-project/database.html",
        subjects=("D1", "D2", *(f"H{i}" for i in range(3, 21))),
        url="https://www.york.ac.uk/sadie-project/Resources/SADIEIIDatabase/{subject}/{subject}_HRIR_SOFA.zip",
        member="{subject}_48K_24bit_256tap_FIR_SOFA.sofa",
        file="{subject}_48K_24bit_256tap_FIR_SOFA.sofa",
    ),
)}


def hrtf_dir() -> Path:
    """The HRTF folder (not created): ``FOLEYSPACE_HRTF_DIR``, else ``<user data folder>/hrtf``."""
    env = os.environ.get("FOLEYSPACE_HRTF_DIR")
    return Path(env).expanduser() if env else user_data_dir() / "hrtf"


def catalog_set(name: str) -> HrtfSet:
    """The set called ``name``; :class:`HrtfError` listing the known ones otherwise."""
    found = CATALOG.get(str(name).lower())
    if found is None:
        raise HrtfError(f"unknown HRTF set {name!r}; known: {', '.join(CATALOG)}")
    return found


def parse_name(text: str) -> tuple[HrtfSet, str] | None:
    """``SET:SUBJECT`` → the set and canonical subject; ``None`` when ``text`` is not of that form
    (then it is a file path).

    Raises:
        HrtfError: a known set with a subject it does not have.
    """
    head, sep, tail = str(text).partition(":")
    if not sep or head.lower() not in CATALOG or "/" in tail or "\\" in tail:
        return None
    hset = CATALOG[head.lower()]
    return hset, hset.subject(tail)


def fetch_command(hset: HrtfSet, subject: str) -> str:
    return f"foleyspace hrtf fetch {hset.name} --subject {subject}"


def resolve_hrtf(text: str | os.PathLike[str]) -> Path:
    """The SOFA file ``--hrtf`` / ``options.hrtf`` names: a fetched ``SET:SUBJECT`` or a path
    (returned as given, ``~`` expanded; whether it exists is checked where it is opened).

    Raises:
        HrtfError: an unknown subject, or a set not fetched yet (the message names the command).
    """
    parsed = parse_name(os.fspath(text))
    if parsed is None:
        return Path(text).expanduser()
    hset, subject = parsed
    path = hset.path_for(subject)
    if not path.is_file():
        raise HrtfError(f"{hset.name}:{subject} is not fetched yet (no {path}); run `{fetch_command(hset, subject)}`")
    return path


def hrtf_option(value: str | os.PathLike[str] | None) -> str | None:
    """The spec value of a ``--hrtf`` argument: ``SET:SUBJECT`` canonical (``hutubs:pp96`` →
    ``hutubs:96``; resolved where the job is validated), a path made absolute, or ``None``.

    Raises:
        HrtfError: a known set with an unknown subject.
    """
    if value is None:
        return None
    parsed = parse_name(os.fspath(value))
    if parsed is not None:
        return f"{parsed[0].name}:{parsed[1]}"
    return str(Path(value).expanduser().absolute())


def is_name(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a ``SET:SUBJECT`` name rather than a file path (valid or not)."""
    head, sep, tail = os.fspath(text).partition(":")
    return bool(sep) and head.lower() in CATALOG and "/" not in tail and "\\" not in tail


def fetched() -> list[tuple[HrtfSet, str, Path]]:
    """Every catalogued subject whose file is in the HRTF folder."""
    return [(s, subj, s.path_for(subj)) for s in CATALOG.values() for subj in s.subjects if s.path_for(subj).is_file()]


#: ``progress(done_bytes, total_bytes or None)`` while downloading.
Progress = Callable[[int, int | None], None]


def _where_to_put(hset: HrtfSet, subject: str, target: Path) -> str:
    url, member = hset.url_for(subject), hset.member_for(subject)
    if member:
        return f"download {url} and put its {member} at {target}"
    return f"download {url} and put it at {target}"


def _download(url: str, into: Path, timeout_s: float, progress: Progress | None) -> None:
    """``url`` into the open-for-writing path ``into``; raises on any network error or short read."""
    request = urllib.request.Request(url, headers={"User-Agent": "foleyspace-hrtf-fetch"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response, into.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        while chunk := response.read(CHUNK):
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if total is not None and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")


def _extract(archive: Path, member: str, into: Path) -> None:
    """The file ``member`` (a name, matched as the last path part) of zip ``archive`` into ``into``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise HrtfError(f"the archive holds no {member}")
            with zf.open(names[0]) as src, into.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    except zipfile.BadZipFile as exc:
        raise HrtfError(f"not a zip archive ({exc})") from None


def fetch(name: str, subject: str, root: Path | None = None, timeout_s: float = TIMEOUT_S,
          progress: Progress | None = None, force: bool = False) -> Path:
    """Download one subject of set ``name`` into the HRTF folder (``root`` overrides it) and
    return the file; a present, valid file is kept unless ``force``.

    Raises:
        HrtfError: unknown set/subject; a network error (one line: the URL and where to put the
            file by hand); a download that is not a usable SOFA file. Nothing is left behind.
    """
    from foleyspace.errors import InputError
    from foleyspace.hrtf.sofa import read_sofa

    hset = catalog_set(name)
    subject = hset.subject(subject)
    target = hset.path_for(subject, root)
    if target.is_file() and not force:
        try:
            read_sofa(target)
            log.info("%s is already there", target)
            return target
        except InputError:
            log.warning("%s is not a usable SOFA file; fetching it again", target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HrtfError(f"cannot create the HRTF folder {target.parent} ({exc.strerror})") from None
    url, member = hset.url_for(subject), hset.member_for(subject)
    temps: list[Path] = []

    def temp(suffix: str) -> Path:
        fd, name_ = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(fd)
        temps.append(Path(name_))
        return temps[-1]

    try:
        with atomic_path(target, suffix=".sofa.part" if member else ".part") as sofa_file:
            downloaded = temp(".part") if member else sofa_file  # a zip is downloaded beside it
            try:
                _download(url, downloaded, timeout_s, progress)
            # 404, timeout, refused, cut off
            except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise HrtfError(f"cannot download {url} ({' '.join(str(reason).split())}); "
                                f"when online run `{fetch_command(hset, subject)}`, or "
                                f"{_where_to_put(hset, subject, target)}") from None
            if member:
                try:
                    _extract(downloaded, member, sofa_file)
                except HrtfError as exc:
                    raise HrtfError(f"{url}: {exc}; {_where_to_put(hset, subject, target)}") from None
            try:
                read_sofa(sofa_file)
            except InputError as exc:
                problem = str(exc).split(": ", 1)[-1]
                raise HrtfError(f"{url} is not a usable SOFA file: {problem}") from None
        log.info("fetched %s into %s", url, target)
        return target
    finally:
        for t in temps:
            t.unlink(missing_ok=True)

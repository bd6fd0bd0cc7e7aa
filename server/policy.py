"""What a job may touch: inputs and outputs inside the allowed roots, outputs never over inputs.

Paths are resolved (symlinks followed) before they are compared, so ``..`` and links cannot
escape a root. The server reads only the files a job names (video, audio, HRTF) and writes only
the stem and its sidecar inside the job's output folder.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from foleyspace.errors import FoleySpaceError
from foleyspace.job import Job


class PolicyError(FoleySpaceError):
    """A job that would read or write outside what it is allowed to."""

    code = "forbidden"


def default_roots() -> list[Path]:
    """The user's home folder and the system temporary folder."""
    return [Path.home(), Path(tempfile.gettempdir())]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class PathPolicy:
    """Allowed roots (resolved)."""

    roots: tuple[Path, ...]
    private: tuple[Path, ...] = ()

    @classmethod
    def from_paths(cls, roots: list[str | Path], private: list[str | Path] = ()) -> PathPolicy:
        """``private``: folders no job may touch even inside a root (the server's state folder)."""
        return cls(tuple(Path(os.path.realpath(r)) for r in roots),
                   tuple(Path(os.path.realpath(p)) for p in private))

    def _allowed(self, path: Path, what: str, resolved: bool = False) -> Path:
        """``path`` resolved (or, when ``resolved``, taken as the real path it already is) if
        it lies inside a root and outside the private folders; :class:`PolicyError` otherwise."""
        real = Path(os.path.normpath(path)) if resolved else Path(os.path.realpath(path))
        if any(_inside(real, private) for private in self.private):
            raise PolicyError(f"{what} {path} is inside the server's own state folder")
        if not any(_inside(real, root) for root in self.roots):
            raise PolicyError(f"{what} {path} is outside the folders this server may use "
                              f"({', '.join(map(str, self.roots))}; start it with --root to add one)")
        return real

    def check_input(self, real: Path, what: str) -> None:
        """At the point of use: an input file, as opened (its real path, judged as it is: not
        resolved again, which would judge whatever the path leads to by now), must be inside the roots."""
        self._allowed(real, what, resolved=True)

    def check_output_folder(self, real: Path) -> None:
        """At the point of use: the output folder, as opened (its real path), must be inside the
        roots and not the server's state folder."""
        self._allowed(real, "output folder", resolved=True)

    def check(self, job: Job) -> None:
        """Raise :class:`PolicyError` unless ``job`` stays within the roots and spares its inputs."""
        inputs = {"video": job.video, "audio": job.audio, "HRTF file": job.hrtf}
        real_inputs = []
        for what, path in inputs.items():
            if path is not None:
                real = self._allowed(Path(path), what)
                if not real.is_file():
                    raise PolicyError(f"{what} {path} is not a file")
                real_inputs.append(real)
        out_dir = self._allowed(Path(job.output).parent, "output folder")
        if not out_dir.is_dir():
            raise PolicyError(f"output folder {Path(job.output).parent} does not exist")
        for target in (Path(job.output), job.sidecar_path):
            real = Path(os.path.realpath(target))
            if real.parent != out_dir:
                raise PolicyError(f"output {target} escapes the output folder")
            if real in real_inputs:
                raise PolicyError(f"output {target} would overwrite an input file")

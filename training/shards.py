"""The training set on disk: deterministic ``.npz`` shards, their manifest, and the reader.

A dataset is a folder holding ``manifest.json`` and shards ``{split}-{index:05d}.npz``. A shard is
a plain, uncompressed ``.npz`` (``np.load`` reads it) whose zip entries carry a fixed date, so the
same arrays always give the same bytes. Arrays of a shard of K examples (L = segment samples at
the config's rate, N = trajectory positions per segment):

* ``mono`` float32 ``(K, L)`` — the source segment;
* ``binaural`` float32 ``(K, 2, L)`` — the DSP-rendered target, ear 0 = left;
* ``xyz`` float32 ``(K, N, 3)`` — metres, SOFA axes (x forward, y left, z up); position i is the
  source at the start of eq.-8 segment i (``foleyspace.render.segment_bounds(L, N)[i]``) — what
  the renderer used there; segment i cross-fades from position i to i + 1, the last one is held;
* ``source`` int32 ``(K,)`` — index into the manifest's ``sources``;
* ``offset`` int64 ``(K,)`` — first sample of the segment in that recording, at the config's rate;
* ``subject`` int32 ``(K,)`` — index into the manifest's ``hrtf`` (the HRIR set that rendered it);
* ``example`` int64 ``(K,)`` — the example's number in the build (its trajectory's seed).

:class:`ShardDataset` reads a split lazily: each shard's arrays are memory-mapped straight from
the zip (entries are stored, not compressed), so random access costs one page-in per example.
See ``training/README.md`` for the manifest.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.atomic_file import atomic_path, write_text_atomic
from foleyspace.diffusion.config import DiffusionConfig
from foleyspace.errors import FoleySpaceError

#: The manifest's ``format`` tag; a reader refuses any other.
FORMAT = "foleyspace-binaural-shards/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "heldout")
#: Shard arrays, in the order they are written, with their dtypes.
ARRAYS: dict[str, np.dtype] = {
    "mono": np.dtype(np.float32), "binaural": np.dtype(np.float32), "xyz": np.dtype(np.float32),
    "source": np.dtype(np.int32), "offset": np.dtype(np.int64), "subject": np.dtype(np.int32),
    "example": np.dtype(np.int64),
}
#: How to repair a damaged shard (the builder re-renders every shard whose bytes differ from its entry).
REBUILD = "run the same `foleyspace train dataset` command again to rebuild it"
#: The date every zip entry carries (the earliest a zip can hold), so no build time leaks in.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class DatasetError(FoleySpaceError):
    """A dataset folder, manifest or shard that cannot be used (one line)."""

    code = "bad_dataset"

    def __init__(self, message: str, code: str | None = None) -> None:
        # raised in a DataLoader worker, it comes back as DatasetError("Caught DatasetError in
        # DataLoader worker process 0.\nOriginal Traceback ...\n...DatasetError: MESSAGE"): keep MESSAGE
        if "\nOriginal Traceback" in message:
            message = message.rstrip().splitlines()[-1].split("DatasetError: ", 1)[-1]
        super().__init__(message, code)


def shard_name(split: str, index: int) -> str:
    """File name of shard ``index`` of ``split``."""
    return f"{split}-{index:05d}.npz"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> str:
    """Write ``arrays`` as an uncompressed ``.npz`` whose bytes depend only on the arrays (entries
    in the given order, a fixed date); atomically (temp file + rename). Returns its SHA-256."""
    path = Path(path)
    with atomic_path(path, suffix=".part") as tmp, open(tmp, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, array in arrays.items():
                array = np.ascontiguousarray(array)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=array.nbytes > (1 << 31)) as entry:
                    np.lib.format.write_array(entry, array, version=(1, 0), allow_pickle=False)
    return sha256_file(path)


def memmap_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed ``.npz`` memory-mapped read-only (no copy, no decompression).

    Raises:
        DatasetError: not a zip, a compressed entry, or an entry that is not a ``.npy`` array.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                    raise DatasetError(f"{path}: entry {info.filename!r} is compressed or not an array")
                fh.seek(info.header_offset)
                local = fh.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise DatasetError(f"{path}: not a readable shard (damaged zip entry {info.filename!r})")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                fh.seek(info.header_offset + 30 + name_len + extra_len)
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                if dtype.hasobject:
                    raise DatasetError(f"{path}: entry {info.filename!r} holds Python objects")
                arrays[info.filename[:-4]] = np.memmap(fh.name, dtype=dtype, mode="r", offset=fh.tell(),
                                                       shape=shape, order="F" if fortran else "C")
    except DatasetError:
        raise
    except Exception as exc:  # zipfile, struct, NumPy's header parser (even tokenize) all fail their own way
        raise DatasetError(f"{path}: not a readable shard ({exc.__class__.__name__}: {exc})") from exc
    return arrays


def write_manifest(root: str | Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` atomically, keys sorted (same content → same bytes)."""
    root = Path(root)
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    write_text_atomic(root / MANIFEST, text, suffix=".part")


def read_manifest(root: str | Path, require_complete: bool = True) -> dict[str, Any]:
    """Load and check ``root/manifest.json``.

    Raises:
        DatasetError: one line: no manifest, not JSON, another format, a bad config, malformed
            shard entries, or (with ``require_complete``) shards not built yet.
    """
    path = Path(root) / MANIFEST
    if Path(root).exists() and not Path(root).is_dir():
        raise DatasetError(f"{root}: not a dataset folder (a file); give the folder `foleyspace train dataset` wrote")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path.parent}: no {MANIFEST} (build one with `foleyspace train dataset`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DatasetError(f"{path}: format {found!r} is not {FORMAT!r}")
    try:
        DiffusionConfig.from_dict(manifest["config"]).segment_samples  # NaN or huge numbers fail here too
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise DatasetError(f"{path}: bad or missing config ({exc})") from None
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise DatasetError(f"{path}: no shard list")
    for k, entry in enumerate(shards):
        if (not isinstance(entry, dict) or entry.get("split") not in SPLITS or not isinstance(entry.get("file"), str)
                or not isinstance(entry.get("count"), int) or entry["count"] < 1
                or Path(entry["file"]).name != entry["file"]):
            raise DatasetError(f"{path}: shard entry {k} is malformed")
    missing = [e["file"] for e in shards if not e.get("sha256")]
    if require_complete and (missing or not manifest.get("complete")):
        raise DatasetError(f"{path.parent}: the dataset is incomplete ({len(missing)} of {len(shards)} shards not "
                           "built); run the same `foleyspace train dataset` command again to finish it")
    return manifest


class ShardDataset:
    """One split of a built dataset, as a map-style dataset (``torch.utils.data.Dataset`` protocol).

    ``dataset[i]`` is ``{"mono": (1, L), "binaural": (2, L), "xyz": (N, 3)}`` float32 tensors
    (L = ``config.segment_samples``, N = ``config.positions``); :meth:`info` says where example i
    came from. Shards are memory-mapped on first use and the ``cache_shards`` most recently used
    are kept open. Picklable (DataLoader workers reopen shards themselves).

    Raises:
        DatasetError: a bad manifest, an unknown or empty split, or a shard whose file is missing,
            altered (with ``verify``: its SHA-256) or whose arrays do not match the manifest.
    """

    def __init__(self, root: str | Path, split: str = "train", cache_shards: int = 4, verify: bool = False) -> None:
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        self.root = Path(root)
        self.split = split
        self.manifest = read_manifest(self.root)
        self.config = DiffusionConfig.from_dict(self.manifest["config"])
        self.scheme: str = self.manifest.get("scheme", "")
        self.shards = [e for e in self.manifest["shards"] if e["split"] == split]
        if not self.shards:
            held = " (build the set with --heldout above 0)" if split == "heldout" else ""
            raise DatasetError(f"{self.root}: no {split} examples{held}")
        for entry in self.shards:
            file = self.root / entry["file"]
            if not file.is_file():
                raise DatasetError(f"{file}: shard missing (rerun `foleyspace train dataset` to rebuild it)")
            if verify and sha256_file(file) != entry["sha256"]:
                raise DatasetError(f"{file}: does not match its manifest entry (SHA-256); {REBUILD}")
        self._starts = np.cumsum([0] + [e["count"] for e in self.shards]).tolist()
        self.cache_shards = max(1, int(cache_shards))
        self._open: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        for k in range(len(self.shards)):  # headers only: a cut-off or damaged shard fails here, not mid-run
            self._checked_arrays(k)

    def __len__(self) -> int:
        return self._starts[-1]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()  # memory maps stay in their process
        return state

    def _locate(self, index: int) -> tuple[int, int]:
        """(shard number in this split, row in it) of example ``index`` (negative counts from the end)."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"example {index} out of range for {n} {self.split} examples")
        k = bisect_right(self._starts, index) - 1
        return k, index - self._starts[k]

    def arrays(self, shard: int) -> dict[str, np.ndarray]:
        """The memory-mapped arrays of this split's shard number ``shard``, checked against the manifest."""
        arrays = self._open.get(shard)
        if arrays is not None:
            self._open.move_to_end(shard)
            return arrays
        arrays = self._checked_arrays(shard)
        self._open[shard] = arrays
        while len(self._open) > self.cache_shards:
            self._open.popitem(last=False)
        return arrays

    def _checked_arrays(self, shard: int) -> dict[str, np.ndarray]:
        """This split's shard number ``shard`` memory-mapped, its arrays checked against the manifest."""
        entry = self.shards[shard]
        path = self.root / entry["file"]
        arrays = memmap_npz(path)
        k, length, n = entry["count"], self.config.segment_samples, self.config.positions
        expected = {"mono": (k, length), "binaural": (k, 2, length), "xyz": (k, n, 3), "source": (k,),
                    "offset": (k,), "subject": (k,), "example": (k,)}
        for name, shape in expected.items():
            got = arrays.get(name)
            if got is None or got.shape != shape or got.dtype != ARRAYS[name]:
                found = "missing" if got is None else f"{got.dtype} {got.shape}"
                raise DatasetError(f"{path}: array {name!r} is {found}; the manifest wants {ARRAYS[name]} {shape}")
        return arrays

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        shard, row = self._locate(int(index))
        a = self.arrays(shard)
        item = {"mono": np.array(a["mono"][row][None, :]), "binaural": np.array(a["binaural"][row]),
                "xyz": np.array(a["xyz"][row])}
        for name, values in item.items():  # a damaged shard must not train the model on NaN
            if not np.isfinite(values).all():
                raise DatasetError(f"{self.root / self.shards[shard]['file']}: example {row} holds NaN or infinite "
                                   f"{name} values; the shard is damaged: {REBUILD}")
        return {name: torch.from_numpy(values) for name, values in item.items()}

    def info(self, index: int) -> dict[str, Any]:
        """Where example ``index`` came from: ``source`` (file relative to the audio folder),
        ``offset_s`` (seconds into it), ``subject`` (the HRIR set's entry in the manifest),
        ``example`` (its number in the build), ``shard`` (file name) and ``row``."""
        shard, row = self._locate(int(index))
        a = self.arrays(shard)
        listed = {}
        for key, array in (("sources", "source"), ("hrtf", "subject")):
            entries, number = self.manifest.get(key), int(a[array][row])
            if not isinstance(entries, list) or not 0 <= number < len(entries) or not isinstance(entries[number], dict):
                raise DatasetError(f"{self.root / self.shards[shard]['file']}: example {row} names {array} {number}, "
                                   f"which the manifest's {key!r} list lacks (a damaged or edited manifest)")
            listed[key] = entries[number]
        return {"source": listed["sources"].get("file"), "offset_s": int(a["offset"][row]) / self.config.sample_rate,
                "subject": listed["hrtf"], "example": int(a["example"][row]),
                "shard": self.shards[shard]["file"], "row": row}

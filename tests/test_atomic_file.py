"""foleyspace.atomic_file on real files: the target is the whole new file or untouched, and no
temporary file outlives the call."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from foleyspace.atomic_file import atomic_path, write_text_atomic

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_success_replaces_the_target(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".data.bin.") and tmp.name.endswith(".tmp")
        assert tmp.exists() and tmp.read_bytes() == b""  # created empty, beside the target
        assert target.read_bytes() == b"old"  # not touched while the block runs
        tmp.write_bytes(b"new content")
    assert target.read_bytes() == b"new content"
    assert names(tmp_path) == ["data.bin"]


def test_success_creates_a_missing_target(tmp_path):
    with atomic_path(str(tmp_path / "fresh.txt"), suffix=".part") as tmp:
        assert tmp.name.endswith(".part")
        tmp.write_text("hello")
    assert (tmp_path / "fresh.txt").read_text() == "hello"
    assert names(tmp_path) == ["fresh.txt"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_in_the_block_keeps_the_old_target_and_removes_the_temp(tmp_path, error):
    target = tmp_path / "state.json"
    target.write_text('{"old": true}')
    with pytest.raises(type(error)) as raised:
        with atomic_path(target) as tmp:
            tmp.write_text('{"new": tru')  # half written
            raise error
    assert raised.value is error  # propagated unchanged
    assert target.read_text() == '{"old": true}'
    assert names(tmp_path) == ["state.json"]


def test_an_error_with_no_old_target_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="bad"):
        with atomic_path(tmp_path / "never.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError("bad")
    assert names(tmp_path) == []


def test_a_failed_rename_removes_the_temp(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"data")
    assert names(tmp_path) == ["taken"] and names(target) == ["inside"]


@posix_only
def test_the_temp_is_private_and_mode_is_applied(tmp_path):
    with atomic_path(tmp_path / "secret") as tmp:
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600 & ~umask()  # private while written
        tmp.write_text("token")
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600 & ~umask()
    (tmp_path / "shared").write_text("old")
    os.chmod(tmp_path / "shared", 0o600)
    with atomic_path(tmp_path / "shared", mode=0o644) as tmp:
        tmp.write_text("new")
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644
    write_text_atomic(tmp_path / "private", "t", mode=0o600)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600


def test_parent_is_a_file_raises_and_changes_nothing(tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a folder")
    with pytest.raises(NotADirectoryError):
        with atomic_path(blocker / "target"):
            pytest.fail("the block must not run")  # pragma: no cover
    assert names(tmp_path) == ["plain-file"] and blocker.read_text() == "not a folder"


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "no" / "such" / "file.txt", "x")
    assert names(tmp_path) == []


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_raises(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "target").write_text("old")
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(PermissionError):
            write_text_atomic(folder / "target", "new")
        assert names(folder) == ["target"] and (folder / "target").read_text() == "old"
    finally:
        os.chmod(folder, 0o755)


def test_temp_names_are_unique(tmp_path):
    target = tmp_path / "t.txt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer block commits last
    assert names(tmp_path) == ["t.txt"]


def test_suffix_lets_numpy_write_the_temp_itself(tmp_path):
    target = tmp_path / "arrays.npz"
    with atomic_path(target, suffix=".npz") as tmp:
        np.savez(tmp, a=np.arange(3))  # np.savez appends ".npz" to a path not ending with it
    assert names(tmp_path) == ["arrays.npz"]
    with np.load(target) as data:
        assert data["a"].tolist() == [0, 1, 2]


def test_write_text_atomic_encoding_and_newlines(tmp_path):
    target = tmp_path / "script.py"
    assert write_text_atomic(target, "a\nb\n", newline="\n") == target
    assert target.read_bytes() == b"a\nb\n"
    write_text_atomic(target, "é\n")
    assert target.read_bytes() == "é\n".replace("\n", os.linesep).encode("utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "not ascii: é", encoding="ascii")
    assert target.read_text(encoding="utf-8") == "é\n"  # the old content
    assert names(tmp_path) == ["script.py"]


def test_the_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_text_atomic(tmp_path / "durable.txt", "12345")
    assert events == [("fsync", 5), ("replace", "durable.txt")]
    assert (tmp_path / "durable.txt").read_text() == "12345"

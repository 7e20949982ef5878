"""Secret files: only on a tmpfs, 0400 and owned by the task's uid, swept as leftovers."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runners import secretfiles

SHM = Path("/dev/shm")


@pytest.fixture
def tmpfs_dir() -> Iterator[Path]:
    if not secretfiles.is_tmpfs(str(SHM)):
        pytest.fail("/dev/shm is not a tmpfs on this machine")
    path = SHM / f"homerun-test-{uuid.uuid4().hex[:8]}"
    yield path
    secretfiles.remove(path)


def test_statfs_tells_a_tmpfs_from_a_disk(tmp_path: Path) -> None:
    assert secretfiles.is_tmpfs(str(SHM))
    assert not secretfiles.is_tmpfs("/")  # the root file system of the test machine
    with pytest.raises(secretfiles.SecretsUnavailable, match="statfs"):
        secretfiles.is_tmpfs(str(tmp_path / "missing"))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_files_are_0400_owned_by_the_task_uid(tmpfs_dir: Path) -> None:
    root = secretfiles.attempt_dir(str(tmpfs_dir), "inst", "task", 1)
    secretfiles.prepare(root, {"a": b"one", "b.key": b"two"}, 200_123)
    for name, value in (("a", b"one"), ("b.key", b"two")):
        info = (root / name).stat()
        assert stat.S_IMODE(info.st_mode) == 0o400
        assert (info.st_uid, info.st_gid) == (200_123, 200_123)
        assert (root / name).read_bytes() == value
    assert stat.S_IMODE((root.parent).stat().st_mode) == 0o700
    assert secretfiles.leftovers(str(tmpfs_dir), "inst") == [("task", 1, root)]
    secretfiles.remove(root)
    assert not root.exists() and secretfiles.leftovers(str(tmpfs_dir), "inst") == []


def test_a_directory_on_disk_is_refused(tmp_path: Path) -> None:
    root = secretfiles.attempt_dir(str(tmp_path / "secrets"), "inst", "task", 1)
    with pytest.raises(secretfiles.SecretsUnavailable, match="is not a tmpfs"):
        secretfiles.prepare(root, {"a": b"one"}, 200_123)
    assert not root.exists()

"""The artifacts collector: what it takes, what it refuses (never following), its bounds."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from runners import artifacts, workspace
from runners.artifacts import OverLimit, collect

BIG = 1 << 30


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_regular_files_are_collected_by_their_path_under_the_tree(tmp_path: Path) -> None:
    tree(tmp_path, {"report.pdf": b"%PDF", "out/a.csv": b"1,2\n", "out/deep/x.bin": b""})
    got = collect(tmp_path, max_files=10, max_bytes=BIG)
    assert sorted((f.path, f.size) for f in got.files) == [
        ("out/a.csv", 4),
        ("out/deep/x.bin", 0),
        ("report.pdf", 4),
    ]
    assert got.refused == []
    assert artifacts.content_type("report.pdf") == "application/pdf"
    assert artifacts.content_type("noext") == "application/octet-stream"


def test_an_absent_tree_collects_nothing(tmp_path: Path) -> None:
    got = collect(tmp_path / "none", max_files=1, max_bytes=1)
    assert got.files == [] and got.refused == []


def test_a_symlink_to_etc_passwd_is_refused_and_never_followed(tmp_path: Path) -> None:
    os.symlink("/etc/passwd", tmp_path / "passwd")
    os.symlink("/etc", tmp_path / "etc")  # a directory link is not walked either
    got = collect(tmp_path, max_files=10, max_bytes=BIG)
    assert got.files == []
    assert got.refused == [
        ("etc", "a symlink (never followed)"),
        ("passwd", "a symlink (never followed)"),
    ]


def test_a_fifo_a_socket_and_a_device_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    kinds = {"fifo": "a FIFO", "sock": "a socket"}
    if os.geteuid() == 0:  # mknod needs CAP_MKNOD, which a task never has either
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        kinds["null"] = "a device"
    try:
        started = time.monotonic()
        got = collect(tmp_path, max_files=10, max_bytes=BIG)
        assert time.monotonic() - started < 2  # a FIFO opened would block forever
    finally:
        sock.close()
    assert got.files == []
    assert dict(got.refused) == kinds


def test_a_hard_link_out_of_the_tree_is_refused_one_inside_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    secret = tmp_path / "host-file"
    secret.write_bytes(b"host secret")
    os.link(secret, root / "stolen")
    (root / "a").write_bytes(b"twice")
    os.link(root / "a", root / "b")
    got = collect(root, max_files=10, max_bytes=BIG)
    assert sorted(f.path for f in got.files) == ["a", "b"]
    assert got.refused == [("stolen", "a hard link to a file outside the tree")]


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    with open(os.fsencode(tmp_path) + b"/bad\xff", "wb") as f:
        f.write(b"x")
    got = collect(tmp_path, max_files=10, max_bytes=BIG)
    assert got.files == []
    assert [why for _, why in got.refused] == ["a name that is not UTF-8"]


def test_over_the_file_count_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    tree(tmp_path, {f"f{i}": b"x" for i in range(11)})
    assert len(collect(tmp_path, max_files=11, max_bytes=BIG).files) == 11
    with pytest.raises(OverLimit, match=r"more than 10 entries.*HOMERUN_ARTIFACTS_MAX_FILES"):
        collect(tmp_path, max_files=10, max_bytes=BIG)
    assert artifacts.over_limit(tmp_path, max_files=10, max_bytes=BIG) is not None
    assert artifacts.over_limit(tmp_path, max_files=11, max_bytes=BIG) is None


def test_empty_directories_and_refused_entries_count_too(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"d{i}").mkdir()
    for i in range(5):
        os.symlink("/", tmp_path / f"l{i}")
    with pytest.raises(OverLimit):
        collect(tmp_path, max_files=9, max_bytes=BIG)


def test_over_the_total_bytes_is_refused(tmp_path: Path) -> None:
    tree(tmp_path, {"a": b"x" * 600, "b": b"y" * 600})
    assert len(collect(tmp_path, max_files=10, max_bytes=1200).files) == 2
    with pytest.raises(OverLimit, match=r"more than 1199 bytes.*HOMERUN_ARTIFACTS_MAX_BYTES"):
        collect(tmp_path, max_files=10, max_bytes=1199)


def test_a_flood_of_files_stops_at_the_limit_in_flat_memory(tmp_path: Path) -> None:
    # 20,000 here (the runner's integration test floods 100,000 through a container).
    flood = tmp_path / "flood"
    flood.mkdir()
    for i in range(20_000):
        (flood / f"{i:06d}").touch()
    tracemalloc.start()
    try:
        with pytest.raises(OverLimit):
            collect(tmp_path, max_files=1000, max_bytes=BIG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Measured: ~0.5 MB, 1,000 entries' worth; the directory listed whole is ~4.6 MB.
    assert peak < 1536 * 1024, peak


def test_open_refuses_a_file_swapped_for_a_symlink_or_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    (tmp_path / "b").write_bytes(b"data")
    found = {f.path: f for f in collect(tmp_path, max_files=10, max_bytes=BIG).files}
    with artifacts.open_found(found["a"]) as f:
        assert f.read() == b"data"
    (tmp_path / "a").unlink()
    os.symlink("/etc/passwd", tmp_path / "a")
    with pytest.raises(OSError):
        artifacts.open_found(found["a"])
    (tmp_path / "b").unlink()
    os.mkfifo(tmp_path / "b")
    with pytest.raises(OSError):
        artifacts.open_found(found["b"])


def test_an_upstream_artifact_is_placed_only_under_its_task(tmp_path: Path) -> None:
    target = workspace.place_input_file(tmp_path, "build", "out/report.pdf")
    assert target == tmp_path / "build" / "out" / "report.pdf"
    assert target.parent.is_dir()
    for bad in ("../escape", "/etc/passwd", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            workspace.place_input_file(tmp_path, "build", bad)
    assert workspace.place_input_file(tmp_path, "each/3", "p.txt") == tmp_path / "each/3/p.txt"
    for name in ("..", "each/../..", "a/b/c", "/abs", ""):
        with pytest.raises(ValueError):
            workspace.place_input_file(tmp_path, name, "x")


TASK_UID = 212345  # a task's uid (runners/identity.py's range)
RUNNER_UID = 10001  # the stack's runner user (images/app-entrypoint.sh)


def task_made(root: Path) -> Path:
    """A tree as a task leaves it: its uid's, a private directory, a 0000 file, a link."""
    private = root / "private"
    private.mkdir()
    (private / "secret.txt").write_bytes(b"mine")
    (root / "locked.bin").write_bytes(b"x")
    outside = root.parent.parent / "outside"
    outside.write_bytes(b"host")
    os.symlink(outside, root / "link")
    for path in (private / "secret.txt", root / "locked.bin", root / "link", private):
        os.chown(path, TASK_UID, TASK_UID, follow_symlinks=False)
    os.chmod(private / "secret.txt", 0o600)
    os.chmod(root / "locked.bin", 0)
    os.chmod(private, 0o700)
    return outside


def as_runner(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a process of the stack's runner: its uid, CAP_CHOWN and nothing else."""
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={RUNNER_UID}",
            f"--regid={RUNNER_UID}",
            "--clear-groups",
            "--inh-caps=-all,+chown",
            "--ambient-caps=-all,+chown",
            "--bounding-set=-all,+chown",
            "--no-new-privs",
            "--",
            sys.executable,
            "-c",
            code,
        ],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another uid can reach (pytest's own tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="homerun-artifacts-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="making another uid's files needs root")
def test_a_runner_that_is_not_root_reads_and_removes_what_the_task_made(
    shared_tmp: Path,
) -> None:
    os.chown(shared_tmp, RUNNER_UID, RUNNER_UID)  # the work directory is the runner's
    work = shared_tmp / "attempt"
    root = work / "artifacts"
    root.mkdir(parents=True)
    os.chown(work, RUNNER_UID, RUNNER_UID)
    os.chown(root, RUNNER_UID, RUNNER_UID)
    outside = task_made(root)
    code = (
        "import sys; from pathlib import Path; from runners import artifacts, workspace\n"
        f"root = Path({str(root)!r})\n"
        "artifacts.reclaim(root)\n"
        "got = artifacts.collect(root, max_files=10, max_bytes=100)\n"
        "print(sorted(f.path for f in got.files), got.refused)\n"
        "print(open(root / 'private' / 'secret.txt', 'rb').read())\n"
        "workspace.remove(root.parent)\n"
    )
    # Without reclaim the runner reads neither and cannot remove the private directory.
    blocked = as_runner(code.replace("artifacts.reclaim(root)\n", ""))
    assert "PermissionError" in blocked.stderr, blocked.stderr
    assert (root / "private" / "secret.txt").exists()
    done = as_runner(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['locked.bin', 'private/secret.txt'] [('link', 'a symlink (never followed)')]",
        "b'mine'",
    ]
    assert not work.exists()
    # The link was never followed: what it pointed at is untouched.
    assert outside.stat().st_uid == 0 and outside.read_bytes() == b"host"


@pytest.mark.skipif(os.geteuid() != 0, reason="making another uid's files needs root")
def test_while_the_task_runs_a_directory_hidden_from_the_runner_is_over_the_bound(
    shared_tmp: Path,
) -> None:
    root = shared_tmp / "artifacts"
    root.mkdir()
    task_made(root)
    code = (
        "from pathlib import Path; from runners import artifacts\n"
        f"print(artifacts.over_limit(Path({str(root)!r}), max_files=1000, max_bytes=10**9))\n"
    )
    got = as_runner(code)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == (
        "'private' under /homerun/artifacts is a directory the runner cannot read:"
        " it cannot be bounded"
    )

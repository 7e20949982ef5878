"""The files a task leaves under ``/homerun/artifacts``: collected after it exits, bounded.

The directory is a bind mount of ``<attempt dir>/artifacts`` (``runners/workspace.py``). Once
the container has exited the runner walks it without ever following a link:

- regular files are collected, by their path under the tree (``report.pdf``, ``out/a.csv``);
- directories are walked (they count as entries too, so an empty-directory flood is bounded);
- a symlink, FIFO, socket, device, a name that is not UTF-8, or a file the runner cannot read
  is *refused*: never opened, reported by its path and why (stored as a refused artifact);
- a hard link whose inode has names outside the tree (its link count exceeds the names found
  inside) is refused the same way: its bytes are another file's, maybe a file of the host.

The tree is first made the runner's own (``reclaim``: ``lchown`` to the runner's uid), so
that a runner that is not root reads what the task made private and can remove it after.

Bounds (``HOMERUN_ARTIFACTS_MAX_FILES`` entries, ``HOMERUN_ARTIFACTS_MAX_BYTES`` in all):
the walk stops at the first entry past either and raises ``OverLimit``, so a tree of a
hundred thousand files costs the runner at most ``max_files`` entries of memory. While the
task runs, ``over_limit`` is asked every ``WATCH_SECONDS`` by the engine (the same walk), so
a task cannot fill the host disk beyond the bound by more than its disk write rate allows
in that time (``runners/blockio.py``).
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "WATCH_SECONDS",
    "Collected",
    "Found",
    "OverLimit",
    "collect",
    "content_type",
    "open_found",
    "over_limit",
    "reclaim",
]

# How often the engine checks a running task's artifacts tree against the bounds.
WATCH_SECONDS = 1.0
UNREADABLE_DIR = "a directory the runner cannot read"


class OverLimit(Exception):
    """The tree is over a bound; the message says which, for the task's error."""


@dataclass(frozen=True)
class Found:
    """A regular file to store: its path under the tree, where it is, what lstat said."""

    path: str
    host: Path
    size: int
    inode: int
    device: int


@dataclass(frozen=True)
class Collected:
    files: list[Found]
    refused: list[tuple[str, str]]  # (path, why)


def _entries(root: Path) -> Iterator[tuple[str, os.DirEntry[str] | None, str | None]]:
    """(relative path, entry, refusal) for everything under ``root``, depth first; the
    entry is None for a refused one. Never follows a symlink."""
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            it = os.scandir(directory)
        except PermissionError:
            yield prefix.rstrip("/") or ".", None, UNREADABLE_DIR
            continue
        # Read lazily, never listed whole: a directory of 100,000 names costs the walk
        # only the entries it gets to before a bound stops it.
        with it:
            for entry in it:
                rel = prefix + entry.name
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:
                    shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    yield shown, None, "a name that is not UTF-8"
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                yield rel, entry, None


def _refusal(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symlink (never followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def collect(root: Path, *, max_files: int, max_bytes: int) -> Collected:
    """What to store from ``root`` and what was refused; raises ``OverLimit``.

    An absent ``root`` (a task type that mounts none) collects nothing.
    """
    if not root.is_dir() or root.is_symlink():
        return Collected([], [])
    files: list[Found] = []
    refused: list[tuple[str, str]] = []
    total = 0
    count = 0
    # inode -> names seen in the tree, for files with more than one link
    linked: dict[tuple[int, int], list[Found]] = {}
    for rel, entry, why in _entries(root):
        count += 1
        if count > max_files:
            raise OverLimit(
                f"more than {max_files} entries under /homerun/artifacts"
                " (HOMERUN_ARTIFACTS_MAX_FILES)"
            )
        if entry is None:
            refused.append((rel, why or "refused"))
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            continue
        reason = _refusal(st.st_mode)
        if reason is not None:
            refused.append((rel, reason))
            continue
        if not os.access(entry.path, os.R_OK, follow_symlinks=False):
            refused.append((rel, "a file the runner cannot read (its mode)"))
            continue
        total += st.st_size
        if total > max_bytes:
            raise OverLimit(
                f"more than {max_bytes} bytes under /homerun/artifacts"
                " (HOMERUN_ARTIFACTS_MAX_BYTES)"
            )
        found = Found(rel, Path(entry.path), st.st_size, st.st_ino, st.st_dev)
        if st.st_nlink > 1:
            linked.setdefault((st.st_dev, st.st_ino), []).append(found)
        files.append(found)
    outside = set()
    for key, names in linked.items():
        first = names[0].host.lstat()
        if first.st_nlink > len(names):
            outside.add(key)
            for found in names:
                refused.append((found.path, "a hard link to a file outside the tree"))
    if outside:
        files = [f for f in files if (f.device, f.inode) not in outside]
    return Collected(sorted(files, key=lambda f: f.path), sorted(refused))


def over_limit(root: Path, *, max_files: int, max_bytes: int) -> str | None:
    """Why the tree is over a bound now, or None (the running task's check).

    A directory the runner cannot read counts as over: what it holds could not be counted
    (the task made it 0700; the runner is not its owner while the task runs).
    """
    try:
        found = collect(root, max_files=max_files, max_bytes=max_bytes)
    except OverLimit as exc:
        return str(exc)
    except OSError:
        return None  # changing under us: the walk after the exit is the one that counts
    hidden = [path for path, why in found.refused if why == UNREADABLE_DIR]
    if hidden:
        return f"{hidden[0]!r} under /homerun/artifacts is {UNREADABLE_DIR}: it cannot be bounded"
    return None


def reclaim(root: Path) -> None:
    """Make the whole tree the runner's own, so that it can read and remove it.

    The task's uid owns what it made; a runner that is not root (the stack's drops to its
    own user and keeps CAP_CHOWN alone, images/app-entrypoint.sh) could neither read a file
    the task made 0600 nor remove files in a directory the task made. Never follows a link
    (``lchown``); directories get the owner's rwx, regular files the owner's read. Without
    CAP_CHOWN (a runner on a workstation) it changes what it can and leaves the rest.
    """
    if not root.is_dir() or root.is_symlink():
        return
    uid, gid = os.geteuid(), os.getegid()
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(directory, name)
            try:
                os.chown(path, uid, gid, follow_symlinks=False)
                mode = os.lstat(path).st_mode
                if stat.S_ISDIR(mode):
                    os.chmod(path, stat.S_IMODE(mode) | stat.S_IRWXU)
                elif stat.S_ISREG(mode):
                    os.chmod(path, stat.S_IMODE(mode) | stat.S_IRUSR)
            except OSError:
                continue


def open_found(found: Found) -> BinaryIO:
    """Open a collected file for reading, refusing anything that is no longer it.

    ``O_NOFOLLOW`` and ``O_NONBLOCK``: a path swapped for a symlink or a FIFO since the walk
    fails here instead of being followed or blocking the runner.
    """
    fd = os.open(found.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (found.device, found.inode):
            raise OSError(f"{found.path} changed after it was collected")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"

"""An attempt's secrets as files: ``/run/secrets/<name>``, on a host tmpfs, for its uid only.

The runner opens the values just before the run (``core.sealing``) and writes each into
``<secrets_dir>/<instance>/<task>.<attempt>/<name>``, mode 0400, owned by the task's uid
(``runners.identity``); the directory is bind-mounted read-only at ``/run/secrets``. So a
value is never an environment variable, never in the container's configuration (a bind
mount shows a path, not content), and never on a disk: ``secrets_dir`` must be a tmpfs,
which ``statfs`` is asked each time (a directory an operator forgot to mount is refused,
rather than quietly written to disk). The directory goes when the attempt ends, and a
runner's sweep removes what a crash left (``runners.reconciler``).

Like ``work_dir``, ``secrets_dir`` must be the same path on the Docker host and in the
runner (docs/operations.md, "Secrets").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from runners import workspace

__all__ = [
    "CONTAINER_DIR",
    "SecretsUnavailable",
    "attempt_dir",
    "is_tmpfs",
    "leftovers",
    "prepare",
    "remove",
]

CONTAINER_DIR = "/run/secrets"
# statfs(2)'s f_type of a tmpfs (linux/magic.h).
TMPFS_MAGIC = 0x01021994


class SecretsUnavailable(Exception):
    """The runner cannot place secret files safely here; the message says why."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def is_tmpfs(path: str) -> bool:
    """Whether ``path`` lies on a tmpfs, by ``statfs(2)``'s file system type."""
    # struct statfs begins with f_type (a word on every Linux ABI); the rest is room.
    buffer = ctypes.create_string_buffer(256)
    if _libc().statfs(os.fsencode(path), buffer) != 0:
        errno = ctypes.get_errno()
        raise SecretsUnavailable(f"statfs({path}) failed: {os.strerror(errno)}")
    f_type = ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF
    return f_type == TMPFS_MAGIC


def attempt_dir(secrets_dir: str, instance: str, task_id: str, attempt: int) -> Path:
    return Path(secrets_dir) / instance / f"{task_id}.{attempt}"


def prepare(root: Path, values: Mapping[str, bytes], uid: int) -> Path:
    """Write each value as ``root/<name>`` (0400, owned by ``uid``); ``root`` itself.

    Raises ``SecretsUnavailable`` when the directory is not on a tmpfs or the files cannot
    be given to the task's uid (a runner without CAP_CHOWN).
    """
    base = root.parent.parent
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SecretsUnavailable(f"cannot create {base}: {exc}") from None
    if not is_tmpfs(str(base)):
        raise SecretsUnavailable(
            f"{base} is not a tmpfs: secret files would reach a disk"
            " (mount one there, see docs/operations.md, HOMERUN_SECRETS_DIR)"
        )
    root.parent.mkdir(mode=0o700, exist_ok=True)
    if root.exists():  # a leftover of this very attempt (a crash before cleanup)
        shutil.rmtree(root)
    root.mkdir(mode=0o700)
    try:
        for name, value in values.items():
            fd = os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
            try:
                os.fchown(fd, uid, uid)
                os.write(fd, value)
            finally:
                os.close(fd)
        # The runner keeps the directory (so it can empty it, owning nothing else); its
        # parents are 0700, so only the container that mounts it sees these names.
        os.chmod(root, 0o755)
    except PermissionError as exc:
        remove(root)
        raise SecretsUnavailable(
            f"cannot give the secret files to the task's uid {uid}: {exc} (the runner needs"
            " CAP_CHOWN)"
        ) from None
    return root


def remove(root: Path) -> None:
    workspace.remove(root)


def leftovers(secrets_dir: str, instance: str) -> list[tuple[str, int, Path]]:
    """(task_id, attempt, path) of every attempt's secrets directory of this instance:
    laid out as the workspaces are, so read the same way."""
    try:
        return workspace.leftovers(secrets_dir, instance)
    except NotADirectoryError:
        return []

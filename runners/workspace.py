"""The per-attempt directory whose files are bind-mounted into a task container.

Why bind mounts: the container's root filesystem is read-only and ``/homerun`` is a
sized tmpfs, and Docker can copy files (``put_archive``) neither into a read-only root nor
into a tmpfs before the container starts. A volume would accept the copy but costs two
extra engine round trips (~100 ms, half a container start) per attempt. So the runner
writes each file into ``<work_dir>/<instance>/<task>.<attempt>/`` and mounts it, read-only,
at its path inside the container; ``/homerun/output.json`` is the one writable mount (a
pre-created empty file), read back from the host once the container has exited, so it
survives the tmpfs. ``work_dir`` must therefore be the same path on the Docker host and
in the runner (docs/operations.md).
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.models import JSON
from plugins.tasktypes import (
    ARTIFACTS_DIR,
    HOMERUN_DIR,
    INPUT_FILE,
    INPUTS_DIR,
    OUTPUT_FILE,
    PayloadError,
)
from runners import artifacts

# Container paths a spec may not place a file at: the runner's own mounts, and the kernel's.
_RESERVED = (HOMERUN_DIR, INPUTS_DIR, OUTPUT_FILE, ARTIFACTS_DIR)
_FORBIDDEN_TREES = ("/proc", "/sys", "/dev", INPUTS_DIR, ARTIFACTS_DIR, "/run/secrets")


@dataclass(frozen=True)
class Workspace:
    root: Path
    # container path -> host path, each bind-mounted read-only
    readonly: Mapping[str, str] = field(default_factory=dict)
    inputs_dir: Path | None = None
    # The attempt's secret files (runners/secretfiles.py), mounted at /run/secrets.
    secrets_dir: Path | None = None

    @property
    def output_file(self) -> Path:
        return self.root / "output.json"

    @property
    def artifacts_dir(self) -> Path:
        """Bind-mounted read-write at ``/homerun/artifacts`` (``runners/artifacts.py``)."""
        return self.root / "artifacts"

    def read_output(self, limit: int) -> tuple[bytes | None, int]:
        """(bytes of output.json or None if empty/absent/over ``limit``, its size)."""
        try:
            size = self.output_file.stat().st_size
        except FileNotFoundError:
            return None, 0
        if size == 0 or size > limit:
            return None, size
        with self.output_file.open("rb") as f:
            # Read at most limit bytes even if the file grew after stat (it cannot: the
            # container has exited, but the bound must not depend on that).
            return f.read(limit), size


def attempt_dir(work_dir: str, instance: str, task_id: str, attempt: int) -> Path:
    return Path(work_dir) / instance / f"{task_id}.{attempt}"


def parse_attempt_dir(name: str) -> tuple[str, int] | None:
    task_id, _, attempt = name.rpartition(".")
    return (task_id, int(attempt)) if task_id and attempt.isdigit() else None


def _check_path(path: str) -> str:
    if not path.startswith("/") or posixpath.normpath(path) != path:
        raise PayloadError(f"file path {path!r} must be absolute and normalised")
    if path in _RESERVED or any(path == t or path.startswith(t + "/") for t in _FORBIDDEN_TREES):
        raise PayloadError(f"file path {path!r} is reserved by the runner")
    return path


def prepare(
    root: Path,
    *,
    payload: Mapping[str, object],
    inputs: Mapping[str, JSON],
    files: Mapping[str, bytes],
) -> Workspace:
    """Write an attempt's files under ``root``; return what to mount where.

    ``/homerun/input.json`` holds the payload unless the spec places its own; each
    upstream task's output is ``/homerun/inputs/<name>.json``. Raises ``PayloadError``
    for a spec file at a reserved or malformed path (a task type's bug, not the engine's).
    """
    checked = {_check_path(p): data for p, data in files.items()}
    if root.exists():  # a leftover of this very attempt (a crash before cleanup)
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)  # whatever the umask: the task's uid must read what we place
    readonly: dict[str, str] = {}
    all_files: dict[str, bytes] = {INPUT_FILE: json.dumps(payload).encode()}
    all_files.update(checked)
    for n, (path, data) in enumerate(sorted(all_files.items())):
        host = root / f"file-{n}"
        host.write_bytes(data)
        # Executable so a task type may place a program; the mount is read-only anyway.
        os.chmod(host, 0o755 if path in checked else 0o644)
        readonly[path] = str(host)
    inputs_dir = root / "inputs"
    inputs_dir.mkdir(mode=0o755)
    os.chmod(inputs_dir, 0o755)
    for name, value in inputs.items():
        target = inputs_dir / f"{name}.json"
        target.write_text(json.dumps(value))
        os.chmod(target, 0o644)
    output = root / "output.json"
    output.touch()
    # World-writable so the task's user (its token's uid, runners/identity.py) can write it
    # whatever uid the runner has (it cannot chown when not root); only this attempt's
    # container mounts it, it is the one file of the workspace the task can change, and
    # RLIMIT_FSIZE bounds it.
    os.chmod(output, 0o666)
    artifacts = root / "artifacts"
    artifacts.mkdir()
    # World-writable for the same reason; its bounds are runners/artifacts.py's, watched
    # while the task runs and applied again after it exits.
    os.chmod(artifacts, 0o777)
    return Workspace(root=root, readonly=readonly, inputs_dir=inputs_dir)


def place_input_file(inputs_dir: Path, upstream: str, path: str) -> Path:
    """Where an upstream task's artifact ``path`` goes (``inputs/<upstream>/<path>``, a map
    instance's ``upstream`` being ``<map task>/<index>``), its directories made; ValueError
    for a name or path that would leave that directory."""
    parts = path.split("/")
    if not _plain(upstream) or upstream.count("/") > 1:
        raise ValueError(f"bad upstream name {upstream!r}")
    if not _plain(path):
        raise ValueError(f"artifact path {path!r} is not a plain relative path")
    parent = inputs_dir
    for part in (*upstream.split("/"), *parts[:-1]):
        parent = parent / part
        parent.mkdir(mode=0o755, exist_ok=True)
    return parent / parts[-1]


def _plain(relative: str) -> bool:
    return not relative.startswith("/") and all(
        p not in ("", ".", "..") for p in relative.split("/")
    )


def remove(root: Path) -> None:
    # What the task made under artifacts/ is its uid's: made the runner's first, or a
    # runner that is not root could not remove files in the task's own directories.
    artifacts.reclaim(root / "artifacts")
    shutil.rmtree(root, ignore_errors=True)


def leftovers(work_dir: str, instance: str) -> list[tuple[str, int, Path]]:
    """(task_id, attempt, path) of every attempt directory of this instance."""
    base = Path(work_dir) / instance
    try:
        entries = list(base.iterdir())
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        parsed = parse_attempt_dir(entry.name)
        if parsed is not None:
            found.append((parsed[0], parsed[1], entry))
    return found

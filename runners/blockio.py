"""Which block device a task's disk I/O is throttled on, and the engine's limits for it.

A task writes to the host disk through exactly one file, ``/homerun/output.json`` (bind-
mounted from the work directory; ``RLIMIT_FSIZE`` bounds its size, nothing bounded its
rate: a task sustained 2.3 GB/s of direct writes, starving every other task and the host).
So each task container gets ``device_write_bps`` and ``device_read_bps`` on the device that
holds the work directory: the block device behind ``os.stat(work_dir).st_dev``, found in
``/sys/dev/block/MAJ:MIN`` (sysfs shows the host's devices inside the runner's container
too, and bind mounts keep the host's device numbers). A partition is throttled through its
disk, the kernel's throttling unit. The engine is handed the device's ``/dev/<name>``:
the node the kernel itself creates in devtmpfs, which the engine resolves on the host
(``/dev/block/MAJ:MIN`` links exist only where udev runs).

Nothing to throttle, logged with the reason and the run going on unthrottled:

- the work directory is on a filesystem without a block device (major 0: tmpfs, overlay,
  NFS, btrfs subvolumes);
- sysfs does not know the device (a host without ``/sys/dev/block``).

What the kernel charges: under cgroup v1 (the engine here), direct I/O and reads that miss
the page cache; buffered writes are written back by the kernel outside the container's
cgroup, where no limit applies, but the page cache they fill counts against the task's
memory limit. Under cgroup v2 with the io controller, buffered writeback is charged too.
The same limit applies to the image's files when ``/var/lib/docker`` shares the device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYS = Path("/sys")


@dataclass(frozen=True)
class Device:
    """What a limit can be set on: ``path`` for the engine, or ``None`` and why not."""

    path: str | None
    reason: str


def work_dir_device(work_dir: str, sys_root: Path = SYS) -> Device:
    """The device holding ``work_dir`` (or its nearest existing parent, if not made yet)."""
    path = Path(work_dir).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    number = f"{major}:{minor}"
    if major == 0:
        return Device(
            None,
            f"{path} is on a filesystem without a block device ({number}: tmpfs, overlay, NFS"
            " or the like)",
        )
    entry = sys_root / "dev" / "block" / number
    if not entry.exists():
        return Device(None, f"{sys_root}/dev/block has no device {number} (holding {path})")
    node = entry.resolve()
    if (node / "partition").exists():
        node = node.parent  # the whole disk is what the kernel throttles
    name = _uevent(node / "uevent").get("DEVNAME")
    if not name:
        return Device(None, f"{node}/uevent names no device (holding {path})")
    return Device(f"/dev/{name}", f"{path} is on {number}")


def _uevent(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def container_limits(device: Device, bytes_per_second: int) -> dict[str, Any]:
    """The create arguments that throttle a container's reads and writes on ``device``."""
    if device.path is None or bytes_per_second <= 0:
        return {}
    rate = [{"Path": device.path, "Rate": bytes_per_second}]
    return {"device_read_bps": rate, "device_write_bps": rate}

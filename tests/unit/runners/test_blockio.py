"""Finding the block device under the work directory, on this machine's real sysfs and
on small sysfs trees laid out the way the kernel lays them out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runners import blockio

MIB = 1024 * 1024


def _sysfs(root: Path, number: str, disk: str, partition: str | None = None) -> Path:
    """A /sys with /sys/dev/block/<number> linking to a disk or one of its partitions."""
    disk_dir = root / "devices" / "virtual" / "block" / disk
    disk_dir.mkdir(parents=True)
    (disk_dir / "uevent").write_text(f"MAJOR=8\nMINOR=0\nDEVNAME={disk}\nDEVTYPE=disk\n")
    target = disk_dir
    if partition is not None:
        target = disk_dir / partition
        target.mkdir()
        (target / "partition").write_text("1\n")
        (target / "uevent").write_text(f"DEVNAME={partition}\nDEVTYPE=partition\n")
    links = root / "dev" / "block"
    links.mkdir(parents=True)
    (links / number).symlink_to(target)
    return root


def _number(path: Path) -> str:
    dev = os.stat(path).st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def test_the_work_dir_of_this_machine_is_on_a_device_the_engine_can_find(tmp_path: Path) -> None:
    device = blockio.work_dir_device(str(tmp_path / "not" / "made" / "yet"))
    if os.major(os.stat(tmp_path).st_dev) == 0:
        pytest.skip(f"{tmp_path} is not on a block device here")
    assert device.path is not None and device.path.startswith("/dev/"), device
    assert os.path.exists(device.path)


def test_a_partition_is_throttled_through_its_disk(tmp_path: Path) -> None:
    sys_root = _sysfs(tmp_path / "sys", _number(tmp_path), "sda", partition="sda1")
    device = blockio.work_dir_device(str(tmp_path), sys_root)
    assert device.path == "/dev/sda", device


def test_a_whole_disk_is_named_by_its_own_node(tmp_path: Path) -> None:
    sys_root = _sysfs(tmp_path / "sys", _number(tmp_path), "vdb")
    assert blockio.work_dir_device(str(tmp_path), sys_root).path == "/dev/vdb"


def test_a_device_sysfs_does_not_know_is_skipped_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "sys" / "dev" / "block").mkdir(parents=True)
    device = blockio.work_dir_device(str(tmp_path), tmp_path / "sys")
    assert device.path is None
    assert _number(tmp_path) in device.reason and "has no device" in device.reason


def test_a_tmpfs_has_no_device_to_throttle() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.major(os.stat(shm).st_dev) != 0:
        pytest.skip("no tmpfs at /dev/shm here")
    device = blockio.work_dir_device(str(shm / "homerun-work"))
    assert device.path is None
    assert "without a block device" in device.reason


def test_the_limits_name_the_device_for_reads_and_writes() -> None:
    device = blockio.Device("/dev/vda", "test")
    limits = blockio.container_limits(device, 50 * MIB)
    rate = [{"Path": "/dev/vda", "Rate": 50 * MIB}]
    assert limits == {"device_read_bps": rate, "device_write_bps": rate}
    assert blockio.container_limits(device, 0) == {}
    assert blockio.container_limits(blockio.Device(None, "tmpfs"), 50 * MIB) == {}

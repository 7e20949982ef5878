"""The IPVS preflight that picks endpoint and publish modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stack import modes
from stack.model import EndpointMode, PublishMode


def test_ipvs_present_keeps_dockers_defaults(tmp_path: Path) -> None:
    proc = tmp_path / "ip_vs"
    proc.write_text("IP Virtual Server version 1.2.1\n")
    assert modes.detect_modes(proc) == (EndpointMode.VIP, PublishMode.INGRESS)


def test_no_ipvs_and_no_module_means_dnsrr_and_host(tmp_path: Path) -> None:
    assert modes.detect_modes(tmp_path / "missing", try_load=False) == (
        EndpointMode.DNSRR,
        PublishMode.HOST,
    )


def test_a_failed_modprobe_means_dnsrr_and_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in modprobe that fails, as it does where the module cannot be loaded.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "modprobe").write_text("#!/bin/sh\nexit 1\n")
    (fake / "modprobe").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert not modes.ipvs_available(tmp_path / "missing")


def test_a_successful_modprobe_is_checked_against_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # modprobe "succeeds" by creating the proc file, the way loading ip_vs does.
    proc = tmp_path / "ip_vs"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "modprobe").write_text(f"#!/bin/sh\ntouch {proc}\n")
    (fake / "modprobe").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert modes.detect_modes(proc) == (EndpointMode.VIP, PublishMode.INGRESS)


def test_this_host_matches_its_kernel() -> None:
    # Whatever the machine, the answer agrees with /proc (no modprobe attempt here).
    expected = Path("/proc/net/ip_vs").exists()
    assert modes.ipvs_available(try_load=False) is expected

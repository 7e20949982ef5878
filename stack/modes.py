"""Preflight: can this host use Swarm's virtual IPs and routing mesh?

Both are built on IPVS. Where the kernel has none (some CI and container hosts), a VIP
service never answers and an ingress port never opens, so the stack must use ``dnsrr``
endpoints and host-mode ports instead. Normal hosts keep Docker's defaults.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stack.model import EndpointMode, PublishMode

IP_VS_PROC = Path("/proc/net/ip_vs")


def ipvs_available(proc: Path = IP_VS_PROC, try_load: bool = True) -> bool:
    if proc.exists():
        return True
    modprobe = shutil.which("modprobe")
    if not try_load or modprobe is None:
        return False
    # Loading the module is what dockerd would need anyway; failure just means "no IPVS".
    loaded = subprocess.run(
        [modprobe, "ip_vs"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return loaded.returncode == 0 and proc.exists()


def detect_modes(
    proc: Path = IP_VS_PROC, try_load: bool = True
) -> tuple[EndpointMode, PublishMode]:
    """(endpoint mode, publish mode) that work on this host."""
    if ipvs_available(proc, try_load):
        return EndpointMode.VIP, PublishMode.INGRESS
    return EndpointMode.DNSRR, PublishMode.HOST

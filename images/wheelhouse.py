"""Complete a directory of host-built wheels for the image's Python.

`pip wheel .` on the host resolves environment markers against the host's interpreter. The
image's Python can differ in ways markers care about (Debian bookworm ships 3.11.2; redis needs
async-timeout below 3.11.3), so `pip install --no-index` in the image would miss a wheel.

Two modes, one file so the marker environment is computed by the same code that reads it:
  python3 - --env < wheelhouse.py        run by the image's Python: print its marker environment
  python wheelhouse.py ENV_JSON OUTDIR [DIR...]
                                         run on the host: evaluate the requirements of every wheel
                                         in OUTDIR and the DIRs against that environment and
                                         `pip wheel` what is missing into OUTDIR, until the set is
                                         closed under its requirements.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path


def marker_environment() -> dict[str, str]:
    """The PEP 508 marker environment of this interpreter (packaging's default_environment)."""
    info = sys.implementation.version
    impl_version = f"{info.major}.{info.minor}.{info.micro}"
    if info.releaselevel != "final":
        impl_version += info.releaselevel[0] + str(info.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def _missing(env: dict[str, str], wheeldirs: list[Path]) -> list[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version

    have: dict[str, Version] = {}
    requires: dict[str, list[Requirement]] = {}
    for wheel in sorted(w for d in wheeldirs for w in d.glob("*.whl")):
        project, version, _, _ = parse_wheel_filename(wheel.name)
        if project in have:
            raise SystemExit(f"two wheels of {project} ({have[project]}, {version}): rebuild them")
        have[project] = version
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            headers = HeaderParser().parsestr(zf.read(meta).decode())
        requires[project] = [Requirement(r) for r in headers.get_all("Requires-Dist") or []]

    # Extras asked for by anyone (databases[asyncpg]) turn on the extra's requirements.
    extras: dict[str, set[str]] = {project: {""} for project in have}

    def applies(owner: str, req: Requirement) -> bool:
        if req.marker is None:
            return True
        return any(req.marker.evaluate({**env, "extra": e}) for e in extras.get(owner, {""}))

    changed = True
    while changed:
        changed = False
        for owner, reqs in requires.items():
            for req in reqs:
                if not applies(owner, req):
                    continue
                wanted = extras.setdefault(canonicalize_name(req.name), {""})
                if not set(req.extras) <= wanted:
                    wanted.update(req.extras)
                    changed = True

    missing = set()
    for owner, reqs in requires.items():
        for req in reqs:
            if not applies(owner, req):
                continue
            dep = canonicalize_name(req.name)
            if dep not in have or not req.specifier.contains(have[dep], prereleases=True):
                missing.add(f"{req.name}{req.specifier}")
    return sorted(missing)


def complete(env: dict[str, str], wheeldirs: list[Path], rounds: int = 5) -> None:
    for _ in range(rounds):
        missing = _missing(env, wheeldirs)
        if not missing:
            return
        print(
            f"[images] wheels the image's Python needs beyond the host's: {missing}",
            file=sys.stderr,
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-qq", "-w", str(wheeldirs[0]), *missing],
            check=True,
        )
    raise SystemExit(
        f"wheel set still incomplete after {rounds} rounds: {_missing(env, wheeldirs)}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--env"]:
        print(json.dumps(marker_environment()))
    else:
        complete(json.loads(sys.argv[1]), [Path(d) for d in sys.argv[2:]])

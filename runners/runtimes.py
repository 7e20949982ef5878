"""Which OCI runtime task containers run under: runc, or gVisor's runsc where the engine has it.

``HOMERUN_TASK_RUNTIME`` says what the operator wants:

- ``runc`` (the default, and the stack's): the engine's ordinary runtime. The lock-down of
  ``runners/containers.py`` is all there is between a task and the host kernel.
- ``runsc``: gVisor. Each task's system calls go to gVisor's own kernel in user space, not
  to the host's, so a kernel bug reachable from a task is no longer a way out. The runner
  refuses to start when the engine has no runtime of that name registered: an operator who
  asked for the stronger sandbox does not silently get the weaker one.
- ``auto``: runsc when the engine has it registered, else runc; the runner logs which it
  chose and why at start.

Registering runsc with a 20.10 engine (Debian's ``runsc`` package; on hosts without KVM
only the ptrace platform works): ``/etc/docker/daemon.json`` gets

    {"runtimes": {"runsc": {"path": "/usr/bin/runsc",
                            "runtimeArgs": ["--platform=ptrace", "--network=none",
                                            "--oci-seccomp"]}}}

(``--oci-seccomp``: gVisor applies the task seccomp profile too; without it, it ignores
it) and the engine reloads it on SIGHUP (docs/operations.md, "Task runtime").

Egress tasks (``core/egress.py``) need a network interface to reach the egress proxy, which
runsc with ``--network=none`` does not give. They run under ``HOMERUN_EGRESS_RUNTIME``
(``runc`` by default): the default runtime stays as locked down as it was, and an operator
who wants gVisor for egress tasks too registers a second runtime (say ``runsc-egress``, the
same arguments with ``--network=sandbox``) and names it there. A name the engine does not
have stops the runner at start, as for ``runsc``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.settings import TASK_RUNTIMES

RUNC, RUNSC, AUTO = TASK_RUNTIMES


class RuntimeUnavailable(RuntimeError):
    """The runtime the operator asked for is not registered with the engine."""


@dataclass(frozen=True)
class Choice:
    runtime: str
    reason: str


def choose(requested: str, registered: Iterable[str]) -> Choice:
    """The runtime for ``HOMERUN_TASK_RUNTIME=requested`` on an engine with ``registered``."""
    names = sorted(registered)
    if requested == RUNC:
        return Choice(RUNC, "HOMERUN_TASK_RUNTIME=runc")
    if requested == RUNSC:
        if RUNSC in names:
            return Choice(RUNSC, "HOMERUN_TASK_RUNTIME=runsc")
        raise RuntimeUnavailable(
            "HOMERUN_TASK_RUNTIME=runsc, but the Docker engine has no runtime named runsc"
            f" registered (it has: {', '.join(names) or 'none'}); register it"
            " (docs/operations.md, Task runtime) or choose runc or auto"
        )
    if requested == AUTO:
        if RUNSC in names:
            return Choice(RUNSC, "HOMERUN_TASK_RUNTIME=auto and the engine has runsc registered")
        return Choice(RUNC, "HOMERUN_TASK_RUNTIME=auto and the engine has no runsc registered")
    raise ValueError(
        f"HOMERUN_TASK_RUNTIME must be one of {', '.join(TASK_RUNTIMES)}: {requested!r}"
    )


def check_egress(name: str, registered: Iterable[str]) -> None:
    """Raise ``RuntimeUnavailable`` when the egress runtime is not registered with the engine."""
    names = sorted(registered)
    if name not in names:
        raise RuntimeUnavailable(
            f"HOMERUN_EGRESS_RUNTIME={name}, but the Docker engine has no runtime of that name"
            f" registered (it has: {', '.join(names) or 'none'})"
        )

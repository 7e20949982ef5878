"""What the Docker API guard lets through: the runner's calls and nothing else (pure).

``route`` sorts a request into the few kinds the runner makes (``runners/containers.py``,
``runners/images.py``) or refuses it; ``check_create`` holds a container-create body to the
hardened profile ``Engine._create`` builds, read from the same constants
(``runners.containers``, ``runners.seccomp``, ``runners.identity``); ``check_owned`` lets an
operation touch only a container of this deployment (its ``homerun.instance`` label);
``list_query`` narrows every listing to those containers. A refusal is ``Refused`` with the
reason the guard logs and answers with (403).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlencode

from core.settings import Settings
from runners import containers, identity, runtimes

__all__ = [
    "Kind",
    "Profile",
    "Refused",
    "Route",
    "check_create",
    "check_mounts",
    "check_owned",
    "list_query",
    "route",
    "unversioned",
]


class Refused(Exception):
    """The call is not one the runner makes; ``reason`` says why (logged and answered)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Kind(Enum):
    PASS = "pass"  # forwarded as it is: engine facts, image inspect and pull
    CREATE = "create"  # body checked by check_create
    LIST = "list"  # query narrowed by list_query
    CONTAINER = "container"  # forwarded once check_owned holds for the container


@dataclass(frozen=True)
class Route:
    kind: Kind
    # CONTAINER: the id or name in the path, and the path after it ("" for DELETE).
    container: str = ""
    action: str = ""

    @property
    def upgrade(self) -> bool:
        """An attach: the connection is hijacked after the engine's 101."""
        return self.action == "attach"


@dataclass(frozen=True)
class Profile:
    """What a task container of this deployment may be: the runner's own settings."""

    instance: str
    work_dir: str
    secrets_dir: str
    egress_network: str
    runtimes: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Profile:
        return cls(
            instance=containers.instance_name(settings.instance, settings.database_url),
            work_dir=os.path.normpath(settings.work_dir),
            secrets_dir=os.path.normpath(settings.secrets_dir),
            egress_network=settings.egress_network if settings.allow_task_network else "",
            # The engine's default runtime is never implied: the runner always names one,
            # the one its setting chose (runsc never falls back to runc here either).
            runtimes=frozenset(
                {
                    *(
                        (runtimes.RUNC, runtimes.RUNSC)
                        if settings.task_runtime == runtimes.AUTO
                        else (settings.task_runtime,)
                    ),
                    *((settings.egress_runtime,) if settings.allow_task_network else ()),
                }
            ),
        )


_VERSION = re.compile(r"^/v[0-9]+(?:\.[0-9]+)?(?=/)")
_FACTS = {("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/version"), ("GET", "/info")}
_IMAGE_INSPECT = re.compile(r"^/images/.+/json$")
_CONTAINER = re.compile(r"^/containers/([A-Za-z0-9][A-Za-z0-9_.-]*)(?:/([a-z]+))?$")
# Per container action, the method the runner uses for it.
_ACTIONS = {
    "start": "POST",
    "kill": "POST",
    "wait": "POST",
    "attach": "POST",
    "json": "GET",
    "logs": "GET",
    "": "DELETE",
}


def unversioned(path: str) -> str:
    """``/v1.41/containers/json`` -> ``/containers/json``."""
    return _VERSION.sub("", path, count=1)


def route(method: str, path: str, query: str) -> Route:
    """The kind of an allowed request; raises ``Refused`` for any other."""
    bare = unversioned(path)
    if (method, bare) in _FACTS or (method == "GET" and _IMAGE_INSPECT.match(bare)):
        return Route(Kind.PASS)
    if method == "POST" and bare == "/images/create":
        params = dict(parse_qsl(query))
        if not params.get("fromImage") or "fromSrc" in params:
            raise Refused("an image may only be pulled (fromImage), never imported")
        return Route(Kind.PASS)
    if method == "POST" and bare == "/containers/create":
        return Route(Kind.CREATE)
    if method == "GET" and bare == "/containers/json":
        return Route(Kind.LIST)
    match = _CONTAINER.match(bare)
    if match and match.group(1) not in {"create", "json"}:
        action = match.group(2) or ""
        if _ACTIONS.get(action) == method:
            return Route(Kind.CONTAINER, container=match.group(1), action=action)
    raise Refused(f"{method} {bare} is not a call the runner makes")


def list_query(query: str, profile: Profile) -> str:
    """``query`` with its filters narrowed to this deployment's containers (labels AND)."""
    params = parse_qsl(query, keep_blank_values=True)
    filters: dict[str, Any] = {}
    for key, value in params:
        if key == "filters":
            try:
                filters = json.loads(value)
            except ValueError:
                raise Refused("filters is not JSON") from None
            if not isinstance(filters, dict):
                raise Refused("filters is not a JSON object")
    labels = filters.get("label", [])
    # The engine takes a list or the older {"k=v": true} map; we send a list.
    labels = list(labels) if isinstance(labels, list | dict) else [labels]
    filters["label"] = [*labels, f"{containers.LABEL_INSTANCE}={profile.instance}"]
    kept = [(k, v) for k, v in params if k != "filters"]
    return urlencode([*kept, ("filters", json.dumps(filters))])


def check_owned(inspected: Mapping[str, Any], profile: Profile) -> str:
    """The container's full id, if it is this deployment's; else ``Refused``."""
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    if labels.get(containers.LABEL_INSTANCE) != profile.instance:
        name = str(inspected.get("Name", "")).lstrip("/") or str(inspected.get("Id", ""))[:12]
        raise Refused(
            f"container {name} is not a homerun task of this deployment"
            f" (no {containers.LABEL_INSTANCE}={profile.instance} label)"
        )
    return str(inspected["Id"])


# Keys of a create body that the runner sets; every other key must be empty or false.
_CONFIG_KEYS = {
    "AttachStdout",
    "AttachStderr",
    "Image",
    "Cmd",
    "Entrypoint",
    "Env",
    "WorkingDir",
    "Labels",
    "User",
    "HostConfig",
    "NetworkingConfig",
}
_HOST_KEYS = {
    "NetworkMode",
    "ReadonlyRootfs",
    "Tmpfs",
    "Mounts",
    "CapDrop",
    "SecurityOpt",
    "PidsLimit",
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "Ulimits",
    "LogConfig",
    "Runtime",
    "Sysctls",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
}


# Keys of one mount, its bind options, the log config and one ulimit (Docker's spelling).
_MOUNT_KEYS = {"Type", "Source", "Target", "ReadOnly", "BindOptions"}
_BIND_OPTION_KEYS = {"Propagation"}
_LOG_KEYS = {"Type", "Config"}
_ULIMIT_KEYS = {"Name", "Soft", "Hard"}
# tmpfs options that would undo Docker's defaults for one (noexec, nosuid, nodev).
_TMPFS_UNSAFE = {"exec", "suid", "dev"}
# The oldest API the guard speaks: below 1.24 the engine takes a HostConfig at start.
OLDEST_API = (1, 24)


def _only(value: Any, keys: set[str], where: str) -> dict[str, Any]:
    """``value`` (an object) with only ``keys``, spelled exactly; refused if it spells one
    key twice in different cases (Docker's JSON decoder ignores case, the last one wins)."""
    if not isinstance(value, dict):
        raise Refused(f"{where} is not an object")
    known = {k.lower() for k in keys}
    seen: dict[str, str] = {}
    for key in value:
        folded = key.lower()
        if folded in seen:
            raise Refused(f"{where}: {seen[folded]!r} and {key!r} are one key to the engine")
        seen[folded] = key
        if key not in keys and folded in known:
            raise Refused(f"{where}: {key!r} is not how the runner spells it")
    return {k: v for k, v in value.items() if k in keys}


def sanitized(body: Mapping[str, Any]) -> dict[str, Any]:
    """The create body the engine gets: only the keys of the task profile, each object
    rebuilt from them (anything else the runner sends is empty or false, check_create),
    so no key the checks did not read can reach the engine."""
    out = _only(dict(body), _CONFIG_KEYS, "the create body")
    if "HostConfig" not in out:
        raise Refused("HostConfig is missing")
    host = _only(out["HostConfig"], _HOST_KEYS, "HostConfig")
    if host.get("Mounts") is not None:
        mounts = []
        for i, mount in enumerate(host["Mounts"] if isinstance(host["Mounts"], list) else [0]):
            kept = _only(mount, _MOUNT_KEYS, f"HostConfig.Mounts[{i}]")
            if kept.get("BindOptions") is not None:
                kept["BindOptions"] = _only(
                    kept["BindOptions"], _BIND_OPTION_KEYS, f"HostConfig.Mounts[{i}].BindOptions"
                )
            mounts.append(kept)
        host["Mounts"] = mounts
    if host.get("LogConfig") is not None:
        host["LogConfig"] = _only(host["LogConfig"], _LOG_KEYS, "HostConfig.LogConfig")
    if host.get("Ulimits") is not None:
        limits = host["Ulimits"] if isinstance(host["Ulimits"], list) else [0]
        host["Ulimits"] = [
            _only(u, _ULIMIT_KEYS, f"HostConfig.Ulimits[{i}]") for i, u in enumerate(limits)
        ]
    out["HostConfig"] = host
    # The runner joins its network through NetworkMode alone: an endpoint's aliases or
    # addresses would let a task answer for another name (egress-proxy) on that network.
    if out.get("NetworkingConfig"):
        raise Refused("NetworkingConfig is not part of the task profile")
    out.pop("NetworkingConfig", None)
    return out


def check_api_version(path: str) -> None:
    """Refuse an API version below OLDEST_API (``/v1.23/...``): the engine would take a
    body of a start call as the container's new HostConfig."""
    match = _VERSION.match(path)
    if match is None:
        return
    major, _, minor = match.group(0)[2:].partition(".")
    if (int(major), int(minor or 0)) < OLDEST_API:
        raise Refused(
            f"API version {match.group(0)[1:]} is older than"
            f" v{OLDEST_API[0]}.{OLDEST_API[1]}, the oldest the guard speaks"
        )


def check_create(
    body: Mapping[str, Any], profile: Profile, resolve: Callable[[str], str] = os.path.realpath
) -> None:
    """Raise ``Refused`` unless ``body`` is a task container as ``Engine._create`` makes it.

    ``resolve`` is how a bind source is followed to where it really is (symlinks included:
    a link under the work root to ``/`` is ``/``), so it must see the host's paths. Check
    the ``sanitized`` body, and send that one.
    """
    for key, value in body.items():
        if key not in _CONFIG_KEYS and value:
            raise Refused(f"{key} is not part of the task profile")
    host = body.get("HostConfig")
    if not isinstance(host, dict):
        raise Refused("HostConfig is missing")
    for key, value in host.items():
        if key not in _HOST_KEYS and value:
            raise Refused(f"HostConfig.{key} is not part of the task profile")
    _check_labels(body.get("Labels") or {}, profile)
    _check_user(body.get("User"))
    network = host.get("NetworkMode")
    allowed_networks = {containers.NETWORK_NONE} | (
        {profile.egress_network} if profile.egress_network else set()
    )
    if network not in allowed_networks:
        raise Refused(
            f"HostConfig.NetworkMode {network!r} is not one of {sorted(allowed_networks)}"
        )
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if set(endpoints) - {network}:
        raise Refused("NetworkingConfig joins a network other than NetworkMode")
    if host.get("ReadonlyRootfs") is not True:
        raise Refused("HostConfig.ReadonlyRootfs must be true")
    if not set(containers.CAP_DROP) <= set(host.get("CapDrop") or ()):
        raise Refused(f"HostConfig.CapDrop must drop {', '.join(containers.CAP_DROP)}")
    if sorted(host.get("SecurityOpt") or ()) != sorted(containers.security_opts()):
        raise Refused(
            "HostConfig.SecurityOpt must be exactly no-new-privileges and the task seccomp"
            " profile (runners/seccomp.py)"
        )
    for key in ("Memory", "PidsLimit", "NanoCpus"):
        value = host.get(key)
        if not isinstance(value, int) or value <= 0:
            raise Refused(f"HostConfig.{key} must be a positive limit")
    if host.get("MemorySwap") != host.get("Memory"):
        raise Refused("HostConfig.MemorySwap must equal Memory (no swap)")
    if host.get("Runtime") not in profile.runtimes:
        raise Refused(
            f"HostConfig.Runtime {host.get('Runtime')!r} is not one of {sorted(profile.runtimes)}"
        )
    sysctls = host.get("Sysctls") or {}
    if any(containers.EGRESS_SYSCTLS.get(k) != v for k, v in sysctls.items()):
        raise Refused("HostConfig.Sysctls may only turn IPv6 off")
    log_type = (host.get("LogConfig") or {}).get("Type")
    if log_type != containers.LOG_DRIVER:
        raise Refused(f"HostConfig.LogConfig must be {containers.LOG_DRIVER!r}, not {log_type!r}")
    for ulimit in host.get("Ulimits") or []:
        name = ulimit.get("Name") if isinstance(ulimit, dict) else None
        if name not in ("fsize", "nofile"):
            raise Refused(f"HostConfig.Ulimits: {name!r} is not one the runner sets")
        if name == "nofile" and ulimit.get("Hard", 0) > containers.NOFILE_LIMIT:
            raise Refused(f"HostConfig.Ulimits: nofile above {containers.NOFILE_LIMIT}")
    tmpfs = host.get("Tmpfs") or {}
    if set(tmpfs) - set(containers.TMPFS_DIRS):
        raise Refused(f"HostConfig.Tmpfs only at {', '.join(containers.TMPFS_DIRS)}")
    for where, options in tmpfs.items():
        unsafe = {o.strip() for o in str(options).split(",")} & _TMPFS_UNSAFE
        if unsafe:
            raise Refused(f"HostConfig.Tmpfs {where}: {', '.join(sorted(unsafe))}")
    check_mounts(host.get("Mounts") or [], profile, resolve)


def check_mounts(
    mounts: list[Any], profile: Profile, resolve: Callable[[str], str] = os.path.realpath
) -> None:
    """Each mount a bind of an attempt's own files, read-only but for the output file."""
    # Where runners/workspace.py and runners/secretfiles.py lay out an attempt's files.
    roots = [
        os.path.join(profile.work_dir, profile.instance),
        os.path.join(profile.secrets_dir, profile.instance),
    ]
    for mount in mounts:
        if not isinstance(mount, dict):
            raise Refused("HostConfig.Mounts holds something that is not a mount")
        source, target = str(mount.get("Source", "")), str(mount.get("Target", ""))
        if mount.get("Type") != "bind":
            raise Refused(f"mount at {target}: only bind mounts, not {mount.get('Type')!r}")
        real = resolve(source) if os.path.isabs(source) else ""
        if not any(real.startswith(root + os.sep) for root in roots):
            raise Refused(
                f"mount at {target}: {source} is not under {roots[0]} or {roots[1]}"
                + (f" (it is {real})" if real and real != source else "")
            )
        if target not in containers.WRITABLE_MOUNTS and mount.get("ReadOnly") is not True:
            raise Refused(f"mount at {target}: must be read-only")
        propagation = (mount.get("BindOptions") or {}).get("Propagation")
        if propagation not in (None, "", "rprivate", "private"):
            raise Refused(f"mount at {target}: propagation {propagation!r}")


def _check_labels(labels: Mapping[str, Any], profile: Profile) -> None:
    missing = [name for name in containers.LABELS if not labels.get(name)]
    if missing:
        raise Refused(f"Labels lack {', '.join(missing)}")
    if labels[containers.LABEL_INSTANCE] != profile.instance:
        raise Refused(
            f"Labels: {containers.LABEL_INSTANCE} must be {profile.instance!r},"
            f" not {labels[containers.LABEL_INSTANCE]!r}"
        )


_USER = re.compile(r"^([0-9]+):([0-9]+)$")


def _check_user(user: Any) -> None:
    match = _USER.match(user if isinstance(user, str) else "")
    last = identity.FIRST_UID + identity.UID_SLOTS
    if (
        match is None
        or match.group(1) != match.group(2)
        or not identity.FIRST_UID <= int(match.group(1)) < last
    ):
        raise Refused(
            f"User {user!r} is not a task uid:gid ({identity.FIRST_UID}..{last - 1},"
            " runners/identity.py)"
        )

"""The guard's rules, without an engine: routes, the create profile, listings, ownership."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from guard import policy
from guard.policy import Kind, Profile, Refused
from plugins.tasktypes import OUTPUT_FILE
from runners import containers, identity

PROFILE = Profile(
    instance="inst",
    work_dir="/var/lib/homerun/work",
    secrets_dir="/run/homerun-secrets",
    egress_network="homerun_egress",
    runtimes=frozenset({"runc", "runsc"}),
)
ATTEMPT = "/var/lib/homerun/work/inst/task.1"
UID = identity.FIRST_UID + 7


def body() -> dict[str, Any]:
    """A create body in the engine's JSON as the SDK sends Engine._create's."""
    return {
        "Image": "homerun/task-shell:0.1.0",
        "Cmd": ["true"],
        "Entrypoint": [],
        "Env": ["HOME=/tmp"],
        "WorkingDir": "/homerun",
        "User": f"{UID}:{UID}",
        "Labels": {
            name: "inst" if name == containers.LABEL_INSTANCE else "x" for name in containers.LABELS
        },
        "AttachStdout": True,
        "Tty": False,
        "OpenStdin": False,
        "HostConfig": {
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "Tmpfs": dict.fromkeys(containers.TMPFS_DIRS, "size=1"),
            "Mounts": [
                {
                    "Type": "bind",
                    "Source": f"{ATTEMPT}/inputs",
                    "Target": "/homerun/inputs",
                    "ReadOnly": True,
                },
                {
                    "Type": "bind",
                    "Source": f"{ATTEMPT}/output.json",
                    "Target": OUTPUT_FILE,
                    "ReadOnly": False,
                },
                {
                    "Type": "bind",
                    "Source": "/run/homerun-secrets/inst/task.1",
                    "Target": "/run/secrets",
                    "ReadOnly": True,
                },
            ],
            "CapDrop": ["ALL"],
            "SecurityOpt": containers.security_opts(),
            "PidsLimit": 64,
            "Memory": 2**26,
            "MemorySwap": 2**26,
            "NanoCpus": 10**9,
            "Runtime": "runc",
            "Privileged": False,
            "LogConfig": {"Type": "none", "Config": {}},
            "Ulimits": [
                {"Name": "fsize", "Soft": 2**20, "Hard": 2**20},
                {"Name": "nofile", "Soft": 1024, "Hard": 1024},
            ],
        },
    }


def check(changed: dict[str, Any]) -> None:
    policy.check_create(changed, PROFILE, resolve=lambda path: path)


def test_the_runners_body_passes() -> None:
    check(body())
    egress = body()
    egress["HostConfig"]["NetworkMode"] = "homerun_egress"
    egress["HostConfig"]["Sysctls"] = dict(containers.EGRESS_SYSCTLS)
    check(egress)


def _set(path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body())
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return changed


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("HostConfig.Privileged", True, "HostConfig.Privileged"),
        ("HostConfig.privileged", True, "HostConfig.privileged"),
        ("HostConfig.CapAdd", ["NET_ADMIN"], "HostConfig.CapAdd"),
        ("HostConfig.Devices", [{"PathOnHost": "/dev/kmsg"}], "HostConfig.Devices"),
        ("HostConfig.DeviceRequests", [{"Count": -1}], "HostConfig.DeviceRequests"),
        ("HostConfig.Binds", ["/:/host"], "HostConfig.Binds"),
        ("HostConfig.VolumesFrom", ["other"], "HostConfig.VolumesFrom"),
        ("HostConfig.PidMode", "host", "HostConfig.PidMode"),
        ("HostConfig.IpcMode", "host", "HostConfig.IpcMode"),
        ("HostConfig.UsernsMode", "host", "HostConfig.UsernsMode"),
        ("HostConfig.CgroupParent", "/", "HostConfig.CgroupParent"),
        ("HostConfig.NetworkMode", "host", "NetworkMode 'host'"),
        ("HostConfig.NetworkMode", "container:abc", "NetworkMode"),
        ("HostConfig.ReadonlyRootfs", False, "ReadonlyRootfs"),
        ("HostConfig.CapDrop", ["NET_RAW"], "CapDrop"),
        ("HostConfig.SecurityOpt", ["no-new-privileges"], "SecurityOpt"),
        (
            "HostConfig.SecurityOpt",
            [*containers.security_opts(), "apparmor=unconfined"],
            "SecurityOpt",
        ),
        ("HostConfig.Memory", 0, "HostConfig.Memory"),
        ("HostConfig.MemorySwap", -1, "MemorySwap"),
        ("HostConfig.PidsLimit", _DELETE, "HostConfig.PidsLimit"),
        ("HostConfig.NanoCpus", _DELETE, "HostConfig.NanoCpus"),
        ("HostConfig.Runtime", _DELETE, "HostConfig.Runtime"),
        ("HostConfig.Runtime", "nvidia", "HostConfig.Runtime"),
        ("HostConfig.Sysctls", {"net.ipv4.ip_forward": "1"}, "Sysctls"),
        ("HostConfig.Tmpfs", {"/etc": ""}, "Tmpfs"),
        ("User", "0:0", "User '0:0'"),
        ("User", "root", "User 'root'"),
        ("User", f"{UID}:0", "User"),
        ("User", _DELETE, "User None"),
        ("Labels", {}, "Labels lack"),
        (
            "Labels",
            {name: "other" for name in containers.LABELS},
            "must be 'inst'",
        ),
        ("Volumes", {"/data": {}}, "Volumes"),
        ("NetworkingConfig", {"EndpointsConfig": {"bridge": {}}}, "NetworkingConfig"),
        ("HostConfig", _DELETE, "HostConfig is missing"),
        ("HostConfig.LogConfig", {"Type": "json-file"}, "LogConfig"),
        ("HostConfig.LogConfig", _DELETE, "LogConfig"),
        ("HostConfig.Ulimits", [{"Name": "nofile", "Soft": 10**6, "Hard": 10**6}], "nofile"),
        ("HostConfig.Ulimits", [{"Name": "memlock", "Soft": -1, "Hard": -1}], "memlock"),
    ],
)
def test_what_the_runner_never_sends_is_refused(path: str, value: Any, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        check(_set(path, value))
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("mount", "reason"),
    [
        ({"Type": "bind", "Source": "/", "Target": "/h", "ReadOnly": True}, "/ is not under"),
        (
            {
                "Type": "bind",
                "Source": "/var/lib/homerun/work/other/t.1",
                "Target": "/h",
                "ReadOnly": True,
            },
            "not under",
        ),
        (
            {
                "Type": "bind",
                "Source": "/var/lib/homerun/work/inst/../../../../etc",
                "Target": "/h",
                "ReadOnly": True,
            },
            "not under",
        ),
        (
            {"Type": "bind", "Source": "relative/inst", "Target": "/h", "ReadOnly": True},
            "not under",
        ),
        (
            {"Type": "bind", "Source": f"{ATTEMPT}/x", "Target": "/h", "ReadOnly": False},
            "read-only",
        ),
        ({"Type": "bind", "Source": f"{ATTEMPT}/x", "Target": "/h"}, "read-only"),
        ({"Type": "volume", "Source": "homerun_guard-socket", "Target": "/s"}, "only bind"),
        (
            {
                "Type": "bind",
                "Source": f"{ATTEMPT}/x",
                "Target": "/h",
                "ReadOnly": True,
                "BindOptions": {"Propagation": "rshared"},
            },
            "propagation",
        ),
    ],
)
def test_a_mount_is_an_attempts_own_file(mount: dict[str, Any], reason: str) -> None:
    changed = body()
    changed["HostConfig"]["Mounts"].append(mount)
    with pytest.raises(Refused) as refused:
        policy.check_create(changed, PROFILE, resolve=lambda p: p.replace("/inst/../../../..", ""))
    assert reason in refused.value.reason


def test_a_link_is_judged_by_where_it_leads() -> None:
    with pytest.raises(Refused, match=r"\(it is /etc\)"):
        policy.check_create(body(), PROFILE, resolve=lambda p: "/etc" if "inputs" in p else p)


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/_ping", Kind.PASS),
        ("HEAD", "/_ping", Kind.PASS),
        ("GET", "/v1.41/version", Kind.PASS),
        ("GET", "/v1.41/info", Kind.PASS),
        ("GET", "/v1.41/images/127.0.0.1:5000/homerun/task-shell:0.1.0/json", Kind.PASS),
        ("POST", "/v1.41/containers/create", Kind.CREATE),
        ("GET", "/v1.41/containers/json", Kind.LIST),
        ("POST", "/v1.41/containers/abc123/start", Kind.CONTAINER),
        ("POST", "/v1.41/containers/homerun-t-1/attach", Kind.CONTAINER),
        ("DELETE", "/v1.41/containers/abc123", Kind.CONTAINER),
    ],
)
def test_the_runners_calls_are_routed(method: str, path: str, kind: Kind) -> None:
    assert policy.route(method, path, "").kind is kind


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1.41/containers/abc/exec"),
        ("POST", "/v1.41/exec/abc/start"),
        ("PUT", "/v1.41/containers/abc/archive"),
        ("GET", "/v1.41/containers/abc/archive"),
        ("POST", "/v1.41/containers/abc/update"),
        ("POST", "/v1.41/containers/abc/rename"),
        ("GET", "/v1.41/containers/abc/start"),
        ("DELETE", "/v1.41/containers/abc/kill"),
        ("POST", "/v1.41/containers/prune"),
        ("POST", "/v1.41/commit"),
        ("POST", "/v1.41/build"),
        ("POST", "/v1.41/images/load"),
        ("DELETE", "/v1.41/images/x"),
        ("POST", "/v1.41/services/create"),
        ("POST", "/v1.41/secrets/create"),
        ("POST", "/v1.41/configs/create"),
        ("POST", "/v1.41/volumes/create"),
        ("POST", "/v1.41/networks/create"),
        ("POST", "/v1.41/networks/n/connect"),
        ("POST", "/v1.41/swarm/init"),
        ("POST", "/v1.41/plugins/pull"),
        ("POST", "/v1.41/session"),
        ("GET", "/v1.41/events"),
    ],
)
def test_every_other_call_is_refused(method: str, path: str) -> None:
    with pytest.raises(Refused, match="is not a call the runner makes"):
        policy.route(method, path, "")


def test_an_image_is_pulled_never_imported() -> None:
    assert policy.route("POST", "/images/create", "fromImage=alpine&tag=3").kind is Kind.PASS
    for query in ("fromSrc=-", "fromSrc=http://x/y.tar&repo=alpine", "fromImage=a&fromSrc=-"):
        with pytest.raises(Refused, match="never imported"):
            policy.route("POST", "/images/create", query)


def _label_filters(query: str) -> Any:
    return json.loads(dict(parse_qsl(query))["filters"])["label"]


def test_a_listing_is_narrowed_to_the_instance() -> None:
    mine = f"{containers.LABEL_INSTANCE}=inst"
    assert _label_filters(policy.list_query("all=1", PROFILE)) == [mine]
    narrowed = policy.list_query('all=1&filters={"label":["a=b"],"name":["x"]}', PROFILE)
    assert _label_filters(narrowed) == ["a=b", mine]
    assert dict(parse_qsl(narrowed))["all"] == "1"
    assert _label_filters(policy.list_query('filters={"label":{"a=b":true}}', PROFILE)) == [
        "a=b",
        mine,
    ]
    with pytest.raises(Refused):
        policy.list_query("filters=[1]", PROFILE)


def test_only_the_instances_containers_are_owned() -> None:
    ours = {
        "Id": "f" * 64,
        "Name": "/homerun-t-1",
        "Config": {"Labels": {containers.LABEL_INSTANCE: "inst"}},
    }
    assert policy.check_owned(ours, PROFILE) == "f" * 64
    for labels in ({}, {containers.LABEL_INSTANCE: "other"}, None):
        theirs = {"Id": "e" * 64, "Name": "/db", "Config": {"Labels": labels}}
        with pytest.raises(Refused, match="db is not a homerun task"):
            policy.check_owned(theirs, PROFILE)


# --- what reaches the engine: the checked keys only, each spelled once -----------------


@pytest.mark.parametrize(
    ("where", "twin", "value"),
    [
        ("", "user", ""),  # the image's user: root
        ("HostConfig", "securityopt", []),  # no seccomp, no no-new-privileges
        ("HostConfig", "capdrop", []),
        ("HostConfig", "networkmode", ""),  # the default bridge: around the egress proxy
        ("HostConfig", "readonlyrootfs", False),
        ("HostConfig", "runtime", ""),
        ("HostConfig", "PRIVILEGED", False),
    ],
)
def test_a_twin_of_a_key_in_another_case_is_refused(where: str, twin: str, value: Any) -> None:
    # Docker's JSON decoder matches keys without case and the last twin wins: an empty
    # "user" after "User" would run the task as root with every check passed.
    changed = body()
    (changed["HostConfig"] if where else changed)[twin] = value
    with pytest.raises(Refused, match=r"one key to the engine|how the runner spells it"):
        policy.sanitized(changed)


def test_a_mounts_source_twin_is_refused() -> None:
    changed = body()
    changed["HostConfig"]["Mounts"][0]["source"] = "/"
    with pytest.raises(Refused, match="one key to the engine"):
        policy.sanitized(changed)


def test_the_sent_body_holds_only_the_checked_keys() -> None:
    changed = body()
    # Empty but not absent: systempaths=unconfined is sent as exactly these.
    changed["HostConfig"]["MaskedPaths"] = []
    changed["HostConfig"]["ReadonlyPaths"] = []
    changed["HostConfig"]["Mounts"][0]["VolumeOptions"] = {}
    check(changed)  # empty, so not refused by the profile...
    sent = policy.sanitized(changed)
    check(sent)
    # ...and never sent: the engine applies its own defaults (paths masked).
    assert "MaskedPaths" not in sent["HostConfig"] and "ReadonlyPaths" not in sent["HostConfig"]
    assert set(sent["HostConfig"]["Mounts"][0]) <= {"Type", "Source", "Target", "ReadOnly"}
    assert "Tty" not in sent and sent["User"] == body()["User"]


def test_an_endpoint_config_is_refused() -> None:
    # Aliases on the egress network would let a task answer for egress-proxy there.
    changed = body()
    changed["HostConfig"]["NetworkMode"] = "homerun_egress"
    changed["NetworkingConfig"] = {
        "EndpointsConfig": {"homerun_egress": {"Aliases": ["egress-proxy"]}}
    }
    with pytest.raises(Refused, match="NetworkingConfig"):
        policy.sanitized(changed)
    changed["NetworkingConfig"] = None
    assert "NetworkingConfig" not in policy.sanitized(changed)


@pytest.mark.parametrize("options", ["size=1,exec", "suid,size=1", "dev"])
def test_a_tmpfs_that_undoes_dockers_defaults_is_refused(options: str) -> None:
    changed = body()
    changed["HostConfig"]["Tmpfs"]["/tmp"] = options
    with pytest.raises(Refused, match="Tmpfs /tmp"):
        check(changed)


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("/v1.23/containers/abc/start", True),
        ("/v1.12/containers/create", True),
        ("/v1.24/containers/abc/start", False),
        ("/v1.41/containers/abc/start", False),
        ("/containers/abc/start", False),
    ],
)
def test_an_api_older_than_a_start_without_a_body_is_refused(path: str, refused: bool) -> None:
    if refused:
        with pytest.raises(Refused, match=r"older than v1\.24"):
            policy.check_api_version(path)
    else:
        policy.check_api_version(path)


@pytest.mark.parametrize(
    ("task_runtime", "network", "allowed"),
    [
        ("runc", False, {"runc"}),
        ("runsc", False, {"runsc"}),
        ("auto", False, {"runc", "runsc"}),
        ("runsc", True, {"runsc", "runc"}),  # egress tasks: the egress runtime (runc)
    ],
)
def test_the_runtime_is_the_one_the_runners_were_given(
    task_runtime: str, network: bool, allowed: set[str]
) -> None:
    from core.settings import Settings

    extra: dict[str, Any] = (
        {
            "allow_task_network": True,
            "egress_network": "homerun_egress",
            "egress_proxy_url": "http://egress-proxy:3128",
        }
        if network
        else {}
    )
    settings = Settings(
        database_url="postgresql://x@localhost/db", task_runtime=task_runtime, **extra
    )
    assert Profile.from_settings(settings).runtimes == frozenset(allowed)

"""The topology itself: names, validation, and the contracts with the app and the images."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from core.settings import (
    DATABASE_PASSWORD_FILE,
    REDIS_PASSWORD_FILE,
    SECRET_FILES,
    Settings,
    env_name,
)
from stack.model import EndpointMode, PublishMode, Resources, duration
from stack.topology import (
    DEFAULT_RESOURCES,
    IMAGE_NAMES,
    REGISTRY_SERVICE_KEYS,
    SECRET_KEYS,
    SERVICE_KEYS,
    RunnerGroup,
    StackConfig,
    build_topology,
    parse_resource,
    parse_runner_group,
)

ROOT = Path(__file__).resolve().parents[3]
APP_SERVICES = ("api", "runner", "notifier")


def test_every_object_carries_the_stack_name():
    topology = build_topology(StackConfig(stack="hrtopo"))
    assert [s.key for s in topology.services] == list(SERVICE_KEYS)
    names = [o.name for o in topology.services] + [o.name for o in topology.networks]
    names += [o.name for o in topology.secrets] + [o.name for o in topology.configs]
    names += [o.name for o in topology.volumes]
    # Every secret but the stack's own registry's password (no registry here) and the egress
    # proxy's key (no egress); four volumes (the guard's socket one among them).
    assert len(names) == len(SERVICE_KEYS) + 2 + (len(SECRET_KEYS) - 2) + 1 + 4
    assert all(name.startswith("hrtopo_") for name in names), names


def test_images_follow_registry_and_tag():
    plain = build_topology(StackConfig())
    assert plain.service("api").image == "homerun/app:0.1.0"
    assert plain.service("postgres-replica").image == "homerun/postgres:0.1.0"
    assert plain.service("redis-events").image == "homerun/redis:0.1.0"
    assert plain.service("edge").image == "homerun/edge:0.1.0"
    remote = build_topology(StackConfig(registry="reg.example:5000/", tag="2.0"))
    assert remote.service("runner").image == "reg.example:5000/homerun/app:2.0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stack": "Bad Name"}, "stack name"),
        ({"stack": "x" * 40}, "stack name"),
        ({"endpoint_mode": "dnsrr", "publish_mode": "ingress"}, "dnsrr needs publish_mode host"),
        ({"endpoint_mode": "bogus"}, "bogus"),
        ({"api_replicas": 0}, "api_replicas"),
        ({"runner_replicas": -1}, "replicas"),
        ({"api_port": 70000}, "api_port"),
        ({"runner_concurrency": 0}, "runner_concurrency"),
        ({"resources": {"nope": Resources(1, 1, 0, 0)}}, "unknown services"),
        ({"run_registry": True, "registry": "reg.example:5000"}, "choose one"),
        ({"registry_port": 0}, "registry_port out of range"),
        ({"registry_port": 65536}, "registry_port out of range"),
        ({"run_registry": True, "registry_port": 8000}, "registry_port and api_port"),
        ({"run_registry": True, "registry_image": ""}, "registry_image"),
    ],
)
def test_invalid_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StackConfig(**kwargs)


def test_a_reservation_above_its_limit_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        Resources(cpus=0.5, memory_mb=256, reserve_cpus=1.0, reserve_memory_mb=64)


def test_parse_resource():
    assert parse_resource("api=2,1024") == (
        "api",
        Resources(
            2.0,
            1024,
            DEFAULT_RESOURCES["api"].reserve_cpus,
            DEFAULT_RESOURCES["api"].reserve_memory_mb,
        ),
    )
    assert parse_resource("edge=0.2,64,0.01,16") == ("edge", Resources(0.2, 64, 0.01, 16))
    # Reservations kept from the defaults are capped at smaller new limits.
    assert parse_resource("api=0.05,64")[1] == Resources(0.05, 64, 0.05, 64)
    for bad in ("api", "api=1", "nope=1,2", "api=1,2,3", "api=x,2"):
        with pytest.raises(ValueError):
            parse_resource(bad)


def test_modes_reach_every_service():
    topology = build_topology(
        StackConfig(endpoint_mode=EndpointMode.DNSRR, publish_mode=PublishMode.HOST)
    )
    assert {s.endpoint_mode for s in topology.services} == {EndpointMode.DNSRR}
    (port,) = topology.service("edge").ports
    assert port.mode is PublishMode.HOST
    assert [s.key for s in topology.services if s.ports] == ["edge"]


@pytest.mark.parametrize("run_registry", [False, True])
def test_app_environment_uses_only_names_core_settings_reads(run_registry):
    known = {env_name(f.name) for f in fields(Settings)}
    known |= {*SECRET_FILES.values(), DATABASE_PASSWORD_FILE, REDIS_PASSWORD_FILE}
    config = StackConfig(allowed_images=("alpine:3",), run_registry=run_registry)
    topology = build_topology(config)
    for key in APP_SERVICES:
        unknown = set(topology.service(key).env) - known
        assert not unknown, (key, unknown)
    assert topology.service("runner").env["HOMERUN_ALLOWED_IMAGES"] == "alpine:3"


def test_the_api_the_runner_and_the_notifier_get_the_same_allowed_images():
    # The API validates a container task's image at submission (without the list it
    # refused every image the runner would have run), the notifier's scheduler each
    # tick's job (tests/unit/stack/test_validator_env.py).
    topology = build_topology(StackConfig(allowed_images=("alpine:*", "team/tool:1")))
    for key in ("api", "runner", "notifier"):
        assert topology.service(key).env["HOMERUN_ALLOWED_IMAGES"] == "alpine:*,team/tool:1"


def test_retention_poll_and_map_bound_reach_their_services():
    topology = build_topology(StackConfig(retention_poll_seconds=3, max_map_items=77))
    assert topology.service("notifier").env["HOMERUN_RETENTION_POLL_SECONDS"] == "3"
    for key in ("api", "notifier"):
        assert topology.service(key).env["HOMERUN_MAX_MAP_ITEMS"] == "77"
    assert "HOMERUN_MAX_MAP_ITEMS" not in topology.service("runner").env
    with pytest.raises(ValueError, match="retention_poll_seconds"):
        StackConfig(retention_poll_seconds=0)
    with pytest.raises(ValueError, match="max_map_items"):
        StackConfig(max_map_items=0)


def test_the_artifact_bounds_reach_the_runners_that_collect():
    group = RunnerGroup(name="big", labels=("big",))
    config = StackConfig(artifacts_max_files=9, artifacts_max_bytes=4096, runner_groups=(group,))
    topology = build_topology(config)
    for key in ("runner", "runner-big"):
        env = topology.service(key).env
        assert (env["HOMERUN_ARTIFACTS_MAX_FILES"], env["HOMERUN_ARTIFACTS_MAX_BYTES"]) == (
            "9",
            "4096",
        )
    assert "HOMERUN_ARTIFACTS_MAX_BYTES" not in topology.service("api").env
    with pytest.raises(ValueError, match="artifacts_max"):
        StackConfig(artifacts_max_bytes=0)


def test_the_per_token_cap_reaches_every_runner():
    topology = build_topology(StackConfig(runner_replicas=2, max_running_per_token=3))
    assert topology.service("runner").env["HOMERUN_MAX_RUNNING_PER_TOKEN"] == "3"
    # By default one slot less than all there are (runner 1 x 4, group 2 x 3), so one
    # token can never hold them all; with one slot, no cap (nothing to share).
    groups = (RunnerGroup(name="big", replicas=2, concurrency=3, labels=("big",)),)
    auto = build_topology(StackConfig(runner_groups=groups))
    assert {
        auto.service(k).env["HOMERUN_MAX_RUNNING_PER_TOKEN"] for k in ("runner", "runner-big")
    } == {"9"}
    one = build_topology(StackConfig(runner_concurrency=1))
    assert one.service("runner").env["HOMERUN_MAX_RUNNING_PER_TOKEN"] == "0"
    off = build_topology(StackConfig(max_running_per_token=0))
    assert off.service("runner").env["HOMERUN_MAX_RUNNING_PER_TOKEN"] == "0"
    with pytest.raises(ValueError, match="max_running_per_token"):
        StackConfig(max_running_per_token=-1)


def test_the_task_runtime_reaches_every_runner_and_their_guard_only():
    groups = (RunnerGroup(name="big", labels=("big",)),)
    topology = build_topology(StackConfig(task_runtime="runsc", runner_groups=groups))
    runners = [s for s in topology.services if s.env.get("HOMERUN_RUNNER_CONCURRENCY")]
    assert {s.key for s in runners} == {"runner", "runner-big"}
    assert {s.env["HOMERUN_TASK_RUNTIME"] for s in runners} == {"runsc"}
    # The guard lets the runners ask for that runtime and no other (guard/policy.py).
    assert topology.service("docker-guard").env["HOMERUN_TASK_RUNTIME"] == "runsc"
    others = [s for s in topology.services if s not in runners and s.key != "docker-guard"]
    assert not [s.key for s in others if "HOMERUN_TASK_RUNTIME" in s.env]
    assert build_topology(StackConfig()).service("runner").env["HOMERUN_TASK_RUNTIME"] == "runc"
    with pytest.raises(ValueError, match="task_runtime must be one of runc, runsc, auto"):
        StackConfig(task_runtime="crun")


@pytest.mark.parametrize(
    ("service", "entrypoint"),
    [
        ("postgres-primary", "postgres-entrypoint.sh"),
        ("postgres-replica", "postgres-entrypoint.sh"),
        ("redis-queue", "redis-entrypoint.sh"),
        ("redis-events", "redis-entrypoint.sh"),
    ],
)
def test_data_service_environment_is_what_the_images_document(service, entrypoint):
    script = ROOT / "images" / entrypoint
    text = script.read_text()
    for var in build_topology(StackConfig()).service(service).env:
        assert var in text, f"{service}: {var} is not read by images/{entrypoint}"


def test_database_urls_carry_no_password_and_secrets_are_files():
    topology = build_topology(StackConfig())
    for key in APP_SERVICES:
        svc = topology.service(key)
        for var in ("HOMERUN_DATABASE_URL", "HOMERUN_DATABASE_REPLICA_URL"):
            userinfo = svc.env[var].split("://", 1)[1].split("@", 1)[0]
            assert ":" not in userinfo
        files = {v for k, v in svc.env.items() if k.endswith("_FILE")}
        assert files <= {ref.path for ref in svc.secrets}, key


@pytest.mark.parametrize(
    "config",
    [StackConfig(), StackConfig(run_registry=True, publish_mode=PublishMode.HOST)],
    ids=["default", "registry-proxy"],
)
def test_every_hostname_a_service_uses_is_a_neighbour_on_a_shared_network(config):
    topology = build_topology(config)
    for svc in topology.services:
        hosts = set()
        for value in svc.env.values():
            hosts |= set(re.findall(r"(?:@|//)([a-z][a-z-]+):\d+", value))
        if "HOMERUN_PG_PRIMARY_HOST" in svc.env:
            hosts.add(svc.env["HOMERUN_PG_PRIMARY_HOST"])
        for ref in svc.configs:
            hosts |= set(
                re.findall(r"server-template \w+ \d+ ([a-z-]+):", topology.config(ref.config).data)
            )
        for host in hosts:
            target = topology.service(host)  # KeyError: a name nobody answers to
            assert host in target.aliases
            assert set(svc.networks) & set(target.networks), (svc.key, host)
    assert topology.service("api").env["HOMERUN_QUEUE_REDIS_URL"] == "redis://redis-queue:6379/0"


def test_data_services_sit_on_the_internal_network_only():
    topology = build_topology(StackConfig())
    assert topology.network("data").internal and not topology.network("public").internal
    for key in ("postgres-primary", "postgres-replica", "redis-queue", "redis-events"):
        assert topology.service(key).networks == ("data",)


def test_config_names_change_with_their_content():
    small = build_topology(StackConfig(api_replicas=2)).config("edge-conf")
    large = build_topology(StackConfig(api_replicas=8)).config("edge-conf")
    assert small.data != large.data and small.name != large.name
    assert build_topology(StackConfig(api_replicas=2)).config("edge-conf") == small


def test_duration():
    assert duration(10) == "10s"
    assert duration(1.5) == "1.5s"
    assert duration(0.25) == "250ms"
    assert duration(0) == "0s"


def test_public_surface_is_pinned():
    # What scripts/ and the Pulumi program import; a change here is a change of contract.
    import stack.compose
    import stack.topology

    assert sorted(stack.topology.__all__) == [
        "DEFAULT_RESOURCES",
        "DERIVED_SECRET_KEYS",
        "EGRESS_SERVICE_KEYS",
        "IMAGE_NAMES",
        "REGISTRY_SERVICE_KEYS",
        "REGISTRY_USER",
        "RunnerGroup",
        "SECRET_KEYS",
        "SERVICE_KEYS",
        "StackConfig",
        "Topology",
        "build_topology",
        "parse_resource",
        "parse_resources",
        "parse_runner_group",
        "parse_runner_groups",
    ]
    assert sorted(stack.compose.__all__) == [
        "detect_modes",
        "main",
        "render",
        "render_yaml",
        "write_configs",
    ]


def _images_sh_builds() -> set[str]:
    """The targets of scripts/images.sh whose `case` branch calls its `build` function."""
    text = (ROOT / "scripts" / "images.sh").read_text()
    built: set[str] = set()
    for patterns, body in re.findall(r"^\s*([\w| -]+)\)\s*(.*?);;\s*$", text, re.MULTILINE):
        if re.search(r"\bbuild\s", body):
            built |= {p.strip() for p in patterns.split("|")}
    return built


def test_image_names_are_what_scripts_images_sh_builds():
    built = _images_sh_builds()
    assert built == set(IMAGE_NAMES)
    all_targets = re.search(r"^ALL=\(([^)]*)\)", (ROOT / "scripts/images.sh").read_text(), re.M)
    assert all_targets and built <= set(all_targets.group(1).split())
    for name in IMAGE_NAMES:
        assert (ROOT / "images" / f"{name}.Dockerfile").exists(), name


def test_every_image_a_service_runs_is_one_of_image_names():
    topology = build_topology(StackConfig(tag="3.1"))
    homerun = {s.image for s in topology.services if s.image.startswith("homerun/")}
    assert homerun == {f"homerun/{n}:3.1" for n in ("app", "postgres", "redis", "edge")}
    assert homerun <= {f"homerun/{n}:3.1" for n in IMAGE_NAMES}


def test_registry_services_are_not_in_a_default_stack():
    topology = build_topology(StackConfig())
    assert not {s.key for s in topology.services} & set(REGISTRY_SERVICE_KEYS)
    assert "registry" not in {n.key for n in topology.networks}
    assert "registry" not in {v.key for v in topology.volumes}
    assert "HOMERUN_TASK_IMAGE_REGISTRY" not in topology.service("runner").env


def test_both_redis_require_the_password_every_client_of_theirs_holds():
    # Without requirepass anything on the data network could rewrite the queue or inject
    # events for any token (issue 12, item 15).
    topology = build_topology(StackConfig())
    for key in ("redis-queue", "redis-events"):
        redis = topology.service(key)
        (ref,) = redis.secrets
        assert ref.secret == "redis-password"
        assert redis.env["HOMERUN_REDIS_PASSWORD_FILE"] == ref.path
        assert redis.healthcheck.test == ("CMD", "homerun-redis-healthcheck")
    for key in APP_SERVICES:
        service = topology.service(key)
        mounted = {ref.path for ref in service.secrets if ref.secret == "redis-password"}
        assert mounted == {service.env[REDIS_PASSWORD_FILE]}, key


def test_the_edge_caps_connections_per_source_only_where_it_sees_sources():
    def edge_conf(**kwargs: Any) -> str:
        (conf,) = [c for c in build_topology(StackConfig(**kwargs)).configs if c.key == "edge-conf"]
        return conf.data

    host = edge_conf(
        endpoint_mode=EndpointMode.DNSRR,
        publish_mode=PublishMode.HOST,
        edge_connections_per_source=37,
    )
    assert "tcp-request connection reject if { sc0_conn_cur gt 37 }" in host
    assert "timeout http-request 10s" in host
    # Behind the routing mesh every client has the mesh's address: a cap would be global.
    assert "sc0_conn_cur" not in edge_conf(publish_mode=PublishMode.INGRESS)
    with pytest.raises(ValueError, match="edge_connections_per_source"):
        StackConfig(edge_connections_per_source=0)


def test_the_edge_health_check_asks_the_published_port_where_the_node_forwards_it():
    def check(**kwargs: Any) -> str:
        test = build_topology(StackConfig(**kwargs)).service("edge").healthcheck
        assert test is not None and test.test[:3] == ("CMD", "bash", "-c")
        return test.test[3]

    host = dict(endpoint_mode=EndpointMode.DNSRR, publish_mode=PublishMode.HOST, api_port=8123)
    assert "/dev/tcp/127.0.0.1/8000" in check(**host)
    assert "/proc/net/route" in check(**host) and "/dev/tcp/$gw/8123" in check(**host)
    assert "/dev/tcp/$gw/" not in check(**host, edge_checks_published_port=False)
    assert "/dev/tcp/$gw/" not in check(publish_mode=PublishMode.INGRESS)


def test_the_socket_template_goes_to_the_guard_and_no_runner_holds_a_socket():
    template = "/var/run/docker-{{.Node.Hostname}}.sock"
    group = parse_runner_group("big:labels=big,constraint=node.labels.disk==big")
    topology = build_topology(
        StackConfig(docker_socket=template, placement_labels=True, runner_groups=(group,))
    )
    guard = topology.service("docker-guard")
    assert guard.replicas is None  # global: one on every node a runner may be placed on
    assert guard.constraints == ()  # a group's runners are placed by their own constraints
    assert [m.source for m in guard.mounts if m.target == "/var/run/docker.sock"] == [template]
    for svc in topology.services:
        if svc.key != "docker-guard":
            assert all(m.source != template for m in svc.mounts), svc.key
            assert all("docker" not in m.source for m in svc.mounts if m.type == "bind"), svc.key
    plain = build_topology(StackConfig(placement_labels=True))
    assert plain.service("docker-guard").constraints == ("node.labels.homerun.runner==true",)


def test_the_egress_proxy_key_is_mounted_in_the_proxy_and_the_runners_only():
    groups = (RunnerGroup(name="big", labels=("big",)),)
    topology = build_topology(
        StackConfig(egress=True, egress_allow=("api.example.com",), runner_groups=groups)
    )
    holders = {
        svc.key: ref
        for svc in topology.services
        for ref in svc.secrets
        if ref.secret == "egress-proxy-key"
    }
    assert sorted(holders) == ["egress-proxy", "runner", "runner-big"]
    # The proxy's helpers run as Debian's proxy user (images/egress-proxy.Dockerfile).
    assert holders["egress-proxy"].uid == 13
    for key in ("runner", "runner-big"):
        env = topology.service(key).env
        assert env["HOMERUN_EGRESS_PROXY_KEY_FILE"] == holders[key].path
    [conf] = [c for c in topology.configs if c.key == "egress-proxy-conf"]
    assert f"core.egressgate auth {holders['egress-proxy'].path}" in conf.data
    # Without egress nobody mounts it, and no runner is told of it.
    plain = build_topology(StackConfig())
    assert not [r for s in plain.services for r in s.secrets if r.secret == "egress-proxy-key"]
    assert "HOMERUN_EGRESS_PROXY_KEY_FILE" not in plain.service("runner").env

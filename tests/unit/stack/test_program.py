"""The Pulumi program under mocks: what each resource would be created with."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from stack import secretfiles
from stack.model import EndpointMode, PublishMode
from stack.topology import IMAGE_NAMES, SERVICE_KEYS

# The harness installs the Pulumi mocks on import; the program itself is only imported by
# run_program, after them.
from tests.unit.stack.harness import (
    SECRET_VALUES,
    Captured,
    Run,
    local_image_id,
    of_type,
    pushed_digest,
    registry_digest,
    run_program,
    services,
    waits_for,
)

SERVICE = "docker:index/service:Service"
NETWORK = "docker:index/network:Network"
SECRET = "docker:index/secret:Secret"
CONFIG = "docker:index/serviceConfig:ServiceConfig"
VOLUME = "docker:index/volume:Volume"
TAG = "docker:index/tag:Tag"
PUSH = "docker:index/registryImage:RegistryImage"
DATA_SERVICES = ("postgres-primary", "postgres-replica", "redis-queue", "redis-events")
# The homerun image each service runs.
IMAGE_OF = {
    "postgres-primary": "postgres",
    "postgres-replica": "postgres",
    "redis-queue": "redis",
    "redis-events": "redis",
    "api": "app",
    "docker-guard": "app",
    "runner": "app",
    "notifier": "app",
    "edge": "edge",
}


@pytest.fixture(scope="module")
def default_run() -> Run:
    return run_program({"stackName": "hrunit"})


@pytest.fixture(scope="module")
def default_services(default_run: list[Captured]) -> dict[str, dict[str, Any]]:
    return services(default_run)


def _network_names(resources: list[Captured]) -> dict[str, str]:
    """Mock id of each network -> its Swarm name (the mocks give id "<logical name>-id")."""
    return {f"{r.name}-id": r.inputs["name"] for r in of_type(resources, NETWORK)}


def _unsecret(value: Any) -> Any:
    # Secret values cross the mock boundary as {<secret signature>: ..., "value": ...}.
    if isinstance(value, dict) and "4dabf18193072939515e22adb298388d" in value:
        return value["value"]
    return value


def test_every_service_is_present_with_the_stack_prefix(default_services):
    assert sorted(default_services) == sorted(f"hrunit_{key}" for key in SERVICE_KEYS)


def test_components_group_the_resources(default_run):
    types = {r.typ for r in default_run}
    for component in ("Networks", "Secrets", "Postgres", "Redis", "App", "Edge"):
        assert f"homerun:stack:{component}" in types
    logical = {r.name for r in of_type(default_run, SERVICE)}
    assert {"hrunit-postgres-primary", "hrunit-postgres-replica", "hrunit-redis-queue"} <= logical


@pytest.mark.parametrize("key", SERVICE_KEYS)
def test_every_service_has_limits_reservations_healthcheck_and_restart_policy(
    default_services, key
):
    svc = default_services[f"hrunit_{key}"]
    task = svc["taskSpec"]
    limits, reservation = task["resources"]["limits"], task["resources"]["reservation"]
    assert limits["nanoCpus"] > 0 and limits["memoryBytes"] > 0
    assert 0 < reservation["nanoCpus"] <= limits["nanoCpus"]
    assert 0 < reservation["memoryBytes"] <= limits["memoryBytes"]
    health = task["containerSpec"]["healthcheck"]
    assert health["tests"][0] in ("CMD", "CMD-SHELL") and len(health["tests"]) >= 2
    assert health["interval"] and health["timeout"] and health["retries"] > 0
    assert task["restartPolicy"]["condition"] == "any"
    assert task["containerSpec"]["stopGracePeriod"]
    labels = {lbl["label"]: lbl["value"] for lbl in svc["labels"]}
    assert labels["com.docker.stack.namespace"] == "hrunit"


# Settings that count something per API token: numbers, not secrets.
PER_TOKEN = {"HOMERUN_MAX_RUNNING_PER_TOKEN"}


def test_secret_values_never_appear_in_any_environment(default_run, default_services):
    forbidden = set(SECRET_VALUES.values())
    forbidden |= {base64.b64encode(v.encode()).decode() for v in forbidden}
    for name, svc in default_services.items():
        container = svc["taskSpec"]["containerSpec"]
        env = container.get("env") or {}
        mounted = {f"/run/secrets/{s['fileName']}" for s in container.get("secrets") or []}
        for var, value in env.items():
            assert not any(secret in value for secret in forbidden), (name, var)
            if any(word in var for word in ("PASSWORD", "TOKEN")) and var not in PER_TOKEN:
                # A secret is only ever named by the file Swarm mounts.
                assert var.endswith("_FILE"), (name, var)
                assert value in mounted, (name, var, value)


def test_secrets_are_swarm_secrets_with_secret_data(default_run):
    by_name = {r.inputs["name"]: r.inputs for r in of_type(default_run, SECRET)}
    # Named after their values under the stack's naming key (stack.secretfiles).
    key = secretfiles.normalize(SECRET_VALUES["secretNamingKey"])
    names = {
        base: secretfiles.versioned_name(f"hrunit_{base}", key, secretfiles.normalize(value))
        for base, value in (
            ("admin-token", SECRET_VALUES["adminToken"]),
            ("db-password", SECRET_VALUES["dbPassword"]),
            ("replication-password", SECRET_VALUES["replicationPassword"]),
            ("redis-password", SECRET_VALUES["redisPassword"]),
            ("secrets-keyring", SECRET_VALUES["secretsKeyring"]),
            ("ui-session-key", SECRET_VALUES["uiSessionKey"]),
        )
    }
    assert sorted(by_name) == sorted(names.values())
    data = by_name[names["db-password"]]["data"]
    assert _unsecret(data) != data, "the secret's data must travel as a Pulumi secret"
    assert base64.b64decode(_unsecret(data)).decode() == SECRET_VALUES["dbPassword"]


def test_data_services_are_only_on_the_internal_network(default_run, default_services):
    networks = {r.inputs["name"]: r.inputs for r in of_type(default_run, NETWORK)}
    assert networks["hrunit_data"]["internal"] is True
    assert networks["hrunit_public"]["internal"] is False
    assert all(n["attachable"] and n["driver"] == "overlay" for n in networks.values())
    ids = _network_names(default_run)
    for key in DATA_SERVICES:
        attached = default_services[f"hrunit_{key}"]["taskSpec"]["networksAdvanceds"]
        assert [ids[a["id"]] for a in attached] == ["hrunit_data"], key
        assert attached[0]["aliases"] == [key]
    api = default_services["hrunit_api"]["taskSpec"]["networksAdvanceds"]
    assert sorted(ids[a["id"]] for a in api) == ["hrunit_data", "hrunit_public"]


def test_only_the_api_port_is_published_by_the_edge(default_services):
    published = {
        name: svc["endpointSpec"].get("ports")
        for name, svc in default_services.items()
        if svc["endpointSpec"].get("ports")
    }
    assert list(published) == ["hrunit_edge"]
    (port,) = published["hrunit_edge"]
    assert (port["targetPort"], port["publishedPort"], port["publishMode"]) == (
        8000,
        8000,
        "ingress",
    )


def test_replicas_and_port_come_from_config():
    run = services(
        run_program(
            {
                "stackName": "hrunit",
                "apiReplicas": 3,
                "runnerReplicas": 2,
                "notifierReplicas": 0,
                "apiPort": 18080,
            }
        )
    )
    replicas = {n: s["mode"].get("replicated", {}).get("replicas") for n, s in run.items()}
    assert replicas["hrunit_api"] == 3
    assert replicas["hrunit_runner"] == 2
    assert replicas["hrunit_notifier"] == 0
    assert replicas["hrunit_postgres-primary"] == 1
    assert run["hrunit_edge"]["mode"] == {"global": True}
    assert run["hrunit_edge"]["endpointSpec"]["ports"][0]["publishedPort"] == 18080


@pytest.mark.parametrize(
    ("endpoint", "publish"), [("vip", "ingress"), ("dnsrr", "host"), ("vip", "host")]
)
def test_endpoint_and_publish_modes_come_from_config(endpoint, publish):
    run = services(run_program({"endpointMode": endpoint, "publishMode": publish}))
    assert {s["endpointSpec"]["mode"] for s in run.values()} == {endpoint}
    assert run["homerun_edge"]["endpointSpec"]["ports"][0]["publishMode"] == publish


def test_auto_modes_follow_the_ipvs_preflight(monkeypatch):
    import stack.config

    monkeypatch.setattr(
        stack.config, "detect_modes", lambda: (EndpointMode.DNSRR, PublishMode.HOST)
    )
    run = services(run_program({"endpointMode": "auto", "publishMode": "auto"}))
    assert run["homerun_api"]["endpointSpec"]["mode"] == "dnsrr"
    assert run["homerun_edge"]["endpointSpec"]["ports"][0]["publishMode"] == "host"


def test_dnsrr_with_the_routing_mesh_is_refused():
    with pytest.raises(ValueError, match="dnsrr needs publish_mode host"):
        run_program({"endpointMode": "dnsrr", "publishMode": "ingress"})


def test_placement_labels_constrain_only_when_enabled(default_services):
    assert not any(s["taskSpec"]["placement"].get("constraints") for s in default_services.values())
    run = services(run_program({"placementLabels": True}))

    def constraints(key: str) -> list[str]:
        placement = run[f"homerun_{key}"]["taskSpec"].get("placement", {})
        return list(placement.get("constraints", []))

    assert constraints("postgres-primary") == ["node.labels.homerun.postgres==primary"]
    assert constraints("postgres-replica") == ["node.labels.homerun.postgres==replica"]
    assert (
        constraints("redis-queue")
        == constraints("redis-events")
        == ["node.labels.homerun.redis==true"]
    )
    assert constraints("runner") == ["node.labels.homerun.runner==true"]
    assert constraints("api") == constraints("edge") == []


def test_api_rolls_start_first_and_rolls_back_on_failure(default_services):
    api = default_services["hrunit_api"]
    assert api["updateConfig"]["order"] == "start-first"
    assert api["updateConfig"]["failureAction"] == "rollback"
    assert api["rollbackConfig"]["order"] == "start-first"
    assert api["mode"]["replicated"]["replicas"] >= 2


def test_only_the_guard_gets_the_docker_socket(default_services):
    socket = {
        "type": "bind",
        "source": "/var/run/docker.sock",
        "target": "/var/run/docker.sock",
        "readOnly": False,
    }
    holders = [
        name
        for name, svc in default_services.items()
        if socket in (svc["taskSpec"]["containerSpec"].get("mounts") or [])
    ]
    assert holders == ["hrunit_docker-guard"]
    guard = default_services["hrunit_docker-guard"]
    assert guard["mode"] == {"global": True}
    spec = guard["taskSpec"]["containerSpec"]
    assert spec["env"]["HOMERUN_GUARD_UPSTREAM"] == "unix:///var/run/docker.sock"
    assert spec["env"]["HOMERUN_INSTANCE"] == "hrunit"
    runner = default_services["hrunit_runner"]["taskSpec"]["containerSpec"]
    assert runner["env"]["HOMERUN_DOCKER_URL"] == f"unix://{spec['env']['HOMERUN_GUARD_SOCKET']}"
    # The guard's socket reaches the runner through the node-local volume they share.
    shared = {m["source"] for m in runner["mounts"]} & {m["source"] for m in spec["mounts"]}
    assert "hrunit_guard-socket" in shared
    assert runner["user"] == "0"


def test_allowed_images_reach_the_api_and_the_runner():
    run = services(run_program({"stackName": "hrunit", "allowedImages": ["alpine:*", "x:1"]}))
    for name in ("hrunit_api", "hrunit_runner"):
        env = run[name]["taskSpec"]["containerSpec"]["env"]
        assert env["HOMERUN_ALLOWED_IMAGES"] == "alpine:*,x:1", name


def test_images_registry_tag_and_resources_from_config():
    run = services(
        run_program(
            {
                "registry": "registry.example:5000",
                "tag": "9.9.9",
                "resources": ["api=2,2048", "runner=1.5,768,0.5,256"],
            }
        )
    )
    # Pinned to the digest the registry answers for the tag (stack.components.pins).
    for key, image in (("api", "app"), ("postgres-primary", "postgres")):
        name = f"registry.example:5000/homerun/{image}:9.9.9"
        assert run[f"homerun_{key}"]["taskSpec"]["containerSpec"]["image"] == (
            f"{name}@{registry_digest(name)}"
        )
    api = run["homerun_api"]["taskSpec"]["resources"]
    assert api["limits"] == {"nanoCpus": 2_000_000_000, "memoryBytes": 2048 * 1024 * 1024}
    runner = run["homerun_runner"]["taskSpec"]["resources"]["reservation"]
    assert runner == {"nanoCpus": 500_000_000, "memoryBytes": 256 * 1024 * 1024}


def test_volumes_survive_destroy_and_are_mounted(default_run, default_services):
    volumes = sorted(r.inputs["name"] for r in of_type(default_run, VOLUME))
    assert volumes == [
        "hrunit_guard-socket",
        "hrunit_pg-primary",
        "hrunit_pg-replica",
        "hrunit_redis-queue",
    ]
    mounts = default_services["hrunit_postgres-primary"]["taskSpec"]["containerSpec"]["mounts"]
    assert mounts == [
        {
            "type": "volume",
            "source": "hrunit_pg-primary",
            "target": "/var/lib/postgresql/data",
            "readOnly": False,
            # Created by whichever node runs the task, labelled like docker stack deploy's.
            "volumeOptions": {
                "labels": [{"label": "com.docker.stack.namespace", "value": "hrunit"}]
            },
        }
    ]


def test_edge_config_is_a_swarm_config(default_run):
    (config,) = of_type(default_run, CONFIG)
    text = base64.b64decode(config.inputs["data"]).decode()
    assert "server-template api" in text and "bind :8000" in text
    assert config.inputs["name"].startswith("hrunit_edge-conf-")


def test_secrets_fall_back_to_files(tmp_path: Path) -> None:
    for key, value in {
        "db-password": "from-file-db",
        "replication-password": "from-file-r",
        "admin-token": "from-file-t",
        "redis-password": "from-file-rp",
        "secrets-keyring": "k1 from-file-k",
        "ui-session-key": "from-file-u",
        "egress-proxy-key": "from-file-e",
    }.items():
        (tmp_path / key).write_text(value + "\n")
    (tmp_path / "naming-key").write_text("from-file-key")
    resources = run_program({"secretsDir": str(tmp_path)}, secrets=False)
    data = {r.inputs["name"]: _unsecret(r.inputs["data"]) for r in of_type(resources, SECRET)}
    name = secretfiles.versioned_name("homerun_db-password", b"from-file-key", b"from-file-db")
    assert base64.b64decode(data[name]).decode() == "from-file-db"


def test_a_missing_secret_is_an_error(tmp_path: Path) -> None:
    import pulumi

    with pytest.raises(pulumi.RunError, match="dbPassword"):
        run_program({"secretsDir": str(tmp_path)}, secrets=False)


def test_pulumi_runs_the_directory_as_a_script(tmp_path: Path) -> None:
    # What the Python language host does: runpy.run_path("stack/", run_name="__main__"),
    # from a process whose sys.path does not hold the repo root.
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    script = tmp_path / "host.py"
    script.write_text(
        "import runpy, sys\n"
        "import pulumi, pulumi.runtime\n"
        "created = []\n"
        "class M(pulumi.runtime.Mocks):\n"
        "    def new_resource(self, args):\n"
        "        created.append(args.typ)\n"
        "        return args.name + '-id', dict(args.inputs)\n"
        "    def call(self, args):\n"
        "        return {'id': 'sha256:x'}, []\n"
        "pulumi.runtime.set_mocks(M(), project='homerun', stack='script', preview=False)\n"
        f"pulumi.runtime.set_all_config({{'homerun:dbPassword': 'a', "
        f"'homerun:replicationPassword': 'b', 'homerun:adminToken': 'c', "
        f"'homerun:redisPassword': 'd', 'homerun:secretsKeyring': 'e',"
        f" 'homerun:secretNamingKey': 'k',"
        f" 'homerun:uiSessionKey': 'u', 'homerun:egressProxyKey': 'x'}})\n"
        f"assert {str(root)!r} not in sys.path\n"
        f"pulumi.runtime.test(lambda: runpy.run_path({str(root / 'stack')!r}, "
        "run_name='__main__'))()\n"
        "print(created.count('docker:index/service:Service'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-P", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(SERVICE_KEYS))


# --------------------------------------------------------------------------- own registry

REGISTRY_HOST = {
    "stackName": "hrreg",
    "runRegistry": True,
    "registryPort": 5077,
    "endpointMode": "dnsrr",
    "publishMode": "host",
    "tag": "4.5.6",
}


@pytest.fixture(scope="module")
def registry_run() -> Run:
    return run_program(REGISTRY_HOST)


def _named(resources: list[Captured], name: str) -> Captured:
    (found,) = [r for r in resources if r.name == name]
    return found


def test_a_default_stack_runs_no_registry_and_pushes_nothing(default_run, default_services):
    assert not of_type(default_run, TAG) and not of_type(default_run, PUSH)
    assert "homerun:stack:Registry" not in {r.typ for r in default_run}
    assert default_run.waited == []
    # Nothing pushed: each local image by its ID on this engine (stack.components.pins), which
    # Swarm neither resolves at a registry nor pulls.
    for key in SERVICE_KEYS:
        image = default_services[f"hrunit_{key}"]["taskSpec"]["containerSpec"]["image"]
        assert image == local_image_id(f"homerun/{IMAGE_OF[key]}:0.1.0"), key


def test_the_registry_and_its_proxy_in_host_mode(registry_run):
    run = services(registry_run)
    registry, proxy = run["hrreg_registry"], run["hrreg_registry-proxy"]
    spec = registry["taskSpec"]["containerSpec"]
    assert spec["image"] == f"registry:2@{registry_digest('registry:2')}"
    assert spec["env"]["REGISTRY_AUTH"] == "htpasswd"
    assert "REGISTRY_STORAGE_DELETE_ENABLED" not in spec["env"]
    assert spec["mounts"][0]["source"] == "hrreg_registry"
    assert registry["mode"] == {"replicated": {"replicas": 1}}
    assert not registry["endpointSpec"].get("ports")
    assert proxy["mode"] == {"global": True}
    assert (
        proxy["taskSpec"]["containerSpec"]["image"]
        == f"haproxy:2.6@{registry_digest('haproxy:2.6')}"
    )
    (port,) = proxy["endpointSpec"]["ports"]
    assert (port["targetPort"], port["publishedPort"], port["publishMode"]) == (5000, 5077, "host")
    (ref,) = proxy["taskSpec"]["containerSpec"]["configs"]
    assert ref["configName"].startswith("hrreg_registry-proxy-conf-")
    (component,) = of_type(registry_run, "homerun:stack:Registry")
    for svc in ("hrreg-registry-service", "hrreg-registry-proxy"):
        assert _named(registry_run, svc).parent == component.urn
    networks = {r.inputs["name"]: r.inputs for r in of_type(registry_run, NETWORK)}
    assert networks["hrreg_registry"]["internal"] is False


def test_with_the_routing_mesh_the_registry_publishes_and_there_is_no_proxy():
    run = services(run_program({"runRegistry": True}))
    assert "homerun_registry-proxy" not in run
    (port,) = run["homerun_registry"]["endpointSpec"]["ports"]
    assert (port["targetPort"], port["publishedPort"], port["publishMode"]) == (
        5000,
        5000,
        "ingress",
    )


def test_every_homerun_image_is_tagged_and_pushed(registry_run):
    tags = {r.inputs["sourceImage"]: r for r in of_type(registry_run, TAG)}
    pushes = {r.inputs["name"]: r for r in of_type(registry_run, PUSH)}
    assert sorted(tags) == sorted(f"homerun/{name}:4.5.6" for name in IMAGE_NAMES)
    for name in IMAGE_NAMES:
        source, target = f"homerun/{name}:4.5.6", f"127.0.0.1:5077/homerun/{name}:4.5.6"
        tag = tags[source]
        assert tag.inputs["targetImage"] == target
        push = pushes[target]
        assert push.inputs["keepRemotely"] is True
        # The digest is read back over plain HTTP: the registry has no TLS. The push logs in
        # as the registry's user, and the whole block is a Pulumi secret (the password).
        auth = push.inputs["authConfig"]
        assert _unsecret(auth) is not auth
        assert _unsecret(auth) == {
            "address": "http://127.0.0.1:5077",
            "username": "homerun",
            "password": SECRET_VALUES["runRegistryPassword"],
        }
        assert tag.urn in push.dependencies
        # A rebuild of the local image under the same tag is tagged and pushed again.
        assert tag.inputs["tagTriggers"] == [local_image_id(source)]
        assert push.inputs["triggers"] == {"sourceImageId": local_image_id(source)}


def test_the_pushes_wait_for_the_registry_and_the_services_for_the_pushes(registry_run):
    pushes = {r.urn for r in of_type(registry_run, PUSH)}
    assert len(pushes) == len(IMAGE_NAMES)
    registry_services = {
        _named(registry_run, n).urn for n in ("hrreg-registry-service", "hrreg-registry-proxy")
    }
    for push in of_type(registry_run, PUSH):
        assert registry_services <= waits_for(registry_run, push), push.name
    # ...and for the registry to answer where the images are pushed to.
    assert registry_run.waited == ["http://127.0.0.1:5077/v2/"]
    for svc in of_type(registry_run, SERVICE):
        if svc.inputs["name"] in ("hrreg_registry", "hrreg_registry-proxy"):
            assert not pushes & waits_for(registry_run, svc), svc.name
        else:
            assert pushes <= waits_for(registry_run, svc), svc.name


def _pinned(image: str, source_id: str | None = None) -> str:
    """What a service of the REGISTRY_HOST stack runs for homerun/``image``: the pushed name
    at the digest the (mock) registry answered for the push of ``source_id``."""
    source, target = f"homerun/{image}:4.5.6", f"127.0.0.1:5077/homerun/{image}:4.5.6"
    return f"{target}@{pushed_digest(target, source_id or local_image_id(source))}"


def test_services_run_the_pushed_images_pinned_to_their_digests(registry_run):
    run = services(registry_run)
    pushed = {r.inputs["name"] for r in of_type(registry_run, PUSH)}
    for key in SERVICE_KEYS:
        image = run[f"hrreg_{key}"]["taskSpec"]["containerSpec"]["image"]
        # Pinned to the push's digest: a rebuilt image is a changed spec, so Swarm rolls it.
        assert image == _pinned(IMAGE_OF[key]), key
        assert image.partition("@")[0] in pushed, key
    # The digests differ per image, so the equality above catches another image's digest.
    assert len({_pinned(image) for image in IMAGE_OF.values()}) == len(set(IMAGE_OF.values()))
    runner = run["hrreg_runner"]["taskSpec"]["containerSpec"]["env"]
    assert runner["HOMERUN_TASK_IMAGE_REGISTRY"] == "127.0.0.1:5077"


def test_a_rebuilt_image_changes_the_specs_of_the_services_running_it(monkeypatch):
    from tests.unit.stack import harness

    rebuilt = "sha256:local-rebuilt-app"
    before = services(run_program(REGISTRY_HOST))
    monkeypatch.setattr(
        harness,
        "local_image_id",
        lambda name: rebuilt if name == "homerun/app:4.5.6" else local_image_id(name),
    )
    after = services(run_program(REGISTRY_HOST))

    def image(run: dict[str, dict[str, Any]], key: str) -> str:
        return str(run[f"hrreg_{key}"]["taskSpec"]["containerSpec"]["image"])

    for key in SERVICE_KEYS:
        if IMAGE_OF[key] == "app":
            assert image(after, key) == _pinned("app", rebuilt) != image(before, key), key
        else:
            assert image(after, key) == image(before, key), key


def test_run_registry_and_a_registry_are_refused():
    with pytest.raises(ValueError, match="choose one"):
        run_program({"runRegistry": True, "registry": "reg.example:5000"})

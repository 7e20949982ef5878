"""The stack's own registry (run_registry): what it adds to the topology in each publish mode,
and the configuration of the proxy that puts it on every node's 127.0.0.1."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from stack import secretfiles
from stack.model import EndpointMode, Port, PublishMode
from stack.topology import (
    DEFAULT_RESOURCES,
    REGISTRY_SERVICE_KEYS,
    REGISTRY_USER,
    SERVICE_KEYS,
    StackConfig,
    build_topology,
)

HOST: dict[str, Any] = {"publish_mode": PublishMode.HOST, "endpoint_mode": EndpointMode.DNSRR}


def test_image_registry_is_the_configured_one_or_the_stacks_own():
    assert StackConfig().image_registry == ""
    assert StackConfig(registry="reg.example:5000/").image_registry == "reg.example:5000"
    assert StackConfig(run_registry=True).image_registry == "127.0.0.1:5000"
    own = StackConfig(run_registry=True, registry_port=5999, tag="2.0")
    assert own.image_registry == "127.0.0.1:5999"
    assert own.image("app") == "127.0.0.1:5999/homerun/app:2.0"
    assert own.local_image("app") == "homerun/app:2.0"


def test_every_homerun_service_pulls_from_the_stacks_registry():
    topology = build_topology(StackConfig(run_registry=True, **HOST))
    for key in SERVICE_KEYS:
        assert topology.service(key).image.startswith("127.0.0.1:5000/homerun/"), key
    # The registry's own images cannot come from the registry they provide.
    assert topology.service("registry").image == "registry:2"
    assert topology.service("registry-proxy").image == "haproxy:2.6"
    # Task images too: the runner qualifies unqualified ones with the same registry.
    assert topology.service("runner").env["HOMERUN_TASK_IMAGE_REGISTRY"] == "127.0.0.1:5000"
    for key in ("api", "notifier"):
        assert "HOMERUN_TASK_IMAGE_REGISTRY" not in topology.service(key).env


def test_a_configured_registry_is_the_task_image_registry_too():
    topology = build_topology(StackConfig(registry="reg.example:5000"))
    assert topology.service("runner").env["HOMERUN_TASK_IMAGE_REGISTRY"] == "reg.example:5000"


def test_with_the_routing_mesh_the_registry_publishes_its_port_itself():
    topology = build_topology(StackConfig(run_registry=True, registry_port=5050))
    assert [s.key for s in topology.services][:1] == ["registry"]
    assert "registry-proxy" not in {s.key for s in topology.services}
    registry = topology.service("registry")
    assert registry.ports == (Port(5000, 5050, PublishMode.INGRESS),)
    assert [c.key for c in topology.configs] == ["edge-conf"]


def test_without_the_routing_mesh_a_proxy_on_every_node_holds_the_port():
    topology = build_topology(StackConfig(run_registry=True, registry_port=5050, **HOST))
    assert [s.key for s in topology.services][:2] == list(REGISTRY_SERVICE_KEYS)
    registry, proxy = topology.service("registry"), topology.service("registry-proxy")
    assert registry.ports == ()
    assert proxy.replicas is None  # global: one task per node
    assert proxy.ports == (Port(5000, 5050, PublishMode.HOST),)
    assert proxy.networks == registry.networks == ("registry",)
    (ref,) = proxy.configs
    assert proxy.command == ("haproxy", "-W", "-db", "-f", ref.target)
    conf = topology.config(ref.config).data
    # The proxy reaches the registry by its service name on the overlay they share.
    assert re.search(r"server-template \w+ \d+ registry:5000 ", conf)
    assert "bind :5000" in conf
    assert proxy.healthcheck.test[-1] == "exec 3<>/dev/tcp/127.0.0.1/5000"


@pytest.mark.parametrize("mode", [{}, HOST], ids=["ingress", "host"])
def test_the_registry_service(mode):
    topology = build_topology(StackConfig(stack="hrreg", run_registry=True, **mode))
    registry = topology.service("registry")
    assert registry.name == "hrreg_registry"
    assert registry.command == ()  # the image's own
    # Every request wants the password; nothing enables deletes.
    assert registry.env == {
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": "homerun hrreg",
        "REGISTRY_AUTH_HTPASSWD_PATH": "/run/secrets/registry-htpasswd",
        "REGISTRY_HTTP_DEBUG_ADDR": "127.0.0.1:5001",
    }
    assert [(r.secret, r.target) for r in registry.secrets] == [
        ("registry-htpasswd", "registry-htpasswd")
    ]
    assert registry.replicas == 1
    (mount,) = registry.mounts
    assert (mount.type, mount.source, mount.target) == ("volume", "registry", "/var/lib/registry")
    assert topology.volume("registry").name == "hrreg_registry"
    assert registry.healthcheck.test == (
        "CMD",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        # /v2/ answers 401 without the password; the debug listener is the container's own.
        "http://127.0.0.1:5001/debug/health",
    )
    network = topology.network("registry")
    # A published port needs the network's gateway.
    assert network.name == "hrreg_registry" and not network.internal
    assert registry.resources == DEFAULT_RESOURCES["registry"]
    assert registry.constraints == ()


def test_placement_labels_pin_the_registry_to_one_labelled_node():
    topology = build_topology(
        StackConfig(run_registry=True, placement_labels=True, label_prefix="acme", **HOST)
    )
    assert topology.service("registry").constraints == ("node.labels.acme.registry==true",)
    assert topology.service("registry-proxy").constraints == ()


def test_registry_images_and_port_are_configurable():
    topology = build_topology(
        StackConfig(
            run_registry=True,
            registry_port=6000,
            registry_image="mirror.example/registry:2.8",
            registry_proxy_image="mirror.example/haproxy:2.8",
            **HOST,
        )
    )
    assert topology.service("registry").image == "mirror.example/registry:2.8"
    assert topology.service("registry-proxy").image == "mirror.example/haproxy:2.8"
    assert topology.service("registry-proxy").ports[0].published == 6000
    assert topology.service("api").image.startswith("127.0.0.1:6000/")


def test_the_registry_part_is_the_registry_services_and_what_they_use():
    topology = build_topology(StackConfig(stack="hrpart", run_registry=True, **HOST))
    part = topology.only(REGISTRY_SERVICE_KEYS)
    assert [s.key for s in part.services] == list(REGISTRY_SERVICE_KEYS)
    assert [n.key for n in part.networks] == ["registry"]
    assert [v.key for v in part.volumes] == ["registry"]
    assert [c.key for c in part.configs] == ["registry-proxy-conf"]
    # Only the registry's htpasswd: the password itself is for those who pull.
    assert [s.key for s in part.secrets] == ["registry-htpasswd"]
    # The very objects of the whole stack: deploying the part first changes nothing later.
    for svc in part.services:
        assert svc == topology.service(svc.key)
    assert part.config("registry-proxy-conf") == topology.config("registry-proxy-conf")


def test_the_proxy_config():
    topology = build_topology(StackConfig(run_registry=True, **HOST))
    conf = topology.config("registry-proxy-conf").data
    assert re.search(r"^\s+mode tcp$", conf, re.M)
    # Resolved through Swarm's DNS at run time, so the proxy starts before the registry does.
    assert "nameserver dns 127.0.0.11:53" in conf and "init-addr none" in conf
    assert "resolvers swarm" in re.search(r"default-server .*", conf).group(0)  # type: ignore[union-attr]
    # A big layer's upload must not hit an idle time-out.
    for side in ("client", "server"):
        assert re.search(rf"timeout {side} 1h", conf), side


def test_the_runners_pull_with_the_registry_password_and_nothing_else_sees_it():
    topology = build_topology(StackConfig(run_registry=True, **HOST))
    runner = topology.service("runner")
    assert runner.env["HOMERUN_TASK_IMAGE_REGISTRY_USERNAME"] == REGISTRY_USER
    assert (
        runner.env["HOMERUN_TASK_IMAGE_REGISTRY_PASSWORD_FILE"] == "/run/secrets/registry-password"
    )
    holders = {
        svc.key for svc in topology.services for r in svc.secrets if r.secret == "registry-password"
    }
    assert holders == {"runner"}
    htpasswd = {
        svc.key for svc in topology.services for r in svc.secrets if r.secret == "registry-htpasswd"
    }
    assert htpasswd == {"registry"}


def test_a_stack_without_its_own_registry_has_no_registry_secrets():
    topology = build_topology(StackConfig(registry="reg.example:5000"))
    keys = {s.key for s in topology.secrets}
    assert not keys & {"registry-password", "registry-htpasswd"}
    assert "HOMERUN_TASK_IMAGE_REGISTRY_USERNAME" not in topology.service("runner").env


def test_the_htpasswd_line_is_bcrypt_of_the_password_and_the_same_every_time():
    line = secretfiles.htpasswd_line("homerun", "s3cret-password")
    user, _, hashed = line.partition(":")
    assert user == "homerun"
    assert hashed.startswith("$2b$10$")
    assert bcrypt.checkpw(b"s3cret-password", hashed.encode())
    assert not bcrypt.checkpw(b"s3cret-passwore", hashed.encode())
    # Deterministic (same secret name from a second checkout), and the salt follows the
    # password: another password gets another salt.
    assert secretfiles.htpasswd_line("homerun", "s3cret-password") == line
    other = secretfiles.htpasswd_line("homerun", "other-password").partition(":")[2]
    assert other[:29] != hashed[:29]


def test_the_derived_secret_follows_its_source_file(tmp_path: Path) -> None:
    paths = secretfiles.ensure(tmp_path, generate=True)
    first = paths["registry-htpasswd"].read_text()
    password = paths["registry-password"].read_text()
    assert bcrypt.checkpw(password.encode(), first.partition(":")[2].encode())
    assert stat.S_IMODE(paths["registry-htpasswd"].stat().st_mode) == 0o600
    # A rotated password (make rotate writes the new file) brings a new line along.
    paths["registry-password"].write_text("rotated-password-value")
    again = secretfiles.ensure(tmp_path, generate=False)
    rotated = again["registry-htpasswd"].read_text()
    assert rotated != first
    assert bcrypt.checkpw(b"rotated-password-value", rotated.partition(":")[2].encode())
    assert secretfiles.read(tmp_path)["registry-htpasswd"] == rotated

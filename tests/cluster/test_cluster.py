"""The test cluster itself: nodes labelled, images through the registry, an overlay network
across nodes, and a node lost and back. Uses a tiny busybox image made here, so it needs
none of the homerun images."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.types import EndpointSpec

from tests.cluster.conftest import Cluster
from tests.conftest import wait_for

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static (scripts/cluster.sh installs it)
APPLETS = ("sh", "httpd", "hostname", "mkdir", "nc", "nslookup", "sed", "sleep", "printf", "tail")
# Each task serves its own hostname (its container's short id) on port 8080.
SERVE = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
# Ask the overlay's DNS for every task of a dnsrr service and fetch from each address.
# (busybox's wget needs glibc's NSS in a static binary; nc does not.)
FETCH_EACH = (
    "for ip in $(nslookup {service} | sed -n '/^Name:/,$ s/^Address: *//p'); do "
    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $ip 8080 | tail -1; done"
)


def _busybox_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for d in ("tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def smoke_image(cluster: Cluster) -> Iterator[str]:
    """A busybox image made in the MANAGER's engine and pushed to the registry from there."""
    ref = f"{cluster.registry}/hrsmoke/busybox:{uuid.uuid4().hex[:8]}"
    repo, tag = ref.rsplit(":", 1)
    with cluster.manager.client() as manager:
        manager.api.import_image_from_data(
            _busybox_tar(), repository=repo, tag=tag, changes=['CMD ["sh"]']
        )
        for line in manager.api.push(repo, tag=tag, stream=True, decode=True):
            assert "error" not in line, line
    yield ref


def test_nodes_are_ready_labelled_and_at_their_own_addresses(cluster: Cluster) -> None:
    with cluster.manager.client() as client:
        nodes = {n.id: n.attrs for n in client.nodes.list()}
    assert set(nodes) == {n.id for n in cluster.nodes}
    for node in cluster.nodes:
        attrs = nodes[node.id]
        assert attrs["Status"]["State"] == "ready"
        assert attrs["Status"]["Addr"] == node.ip
        assert attrs["Description"]["Hostname"] == node.hostname
        assert attrs["Spec"]["Role"] == ("manager" if node.index == 1 else "worker")
        labels = {**node.labels, "homerun.cluster.node": f"node{node.index}"}
        assert attrs["Spec"]["Labels"] == labels
    # The documented layout (docs/multinode.md): primary and replica apart, runners on two.
    assert cluster.node(1).labels == {
        "homerun.postgres": "primary",
        "homerun.redis": "true",
        "homerun.registry": "true",
    }
    assert cluster.node(2).labels == {"homerun.postgres": "replica", "homerun.runner": "true"}
    assert cluster.node(3).labels == {"homerun.runner": "true"}


def test_a_worker_pulls_from_the_registry_and_serves_across_the_overlay(
    cluster: Cluster, smoke_image: str
) -> None:
    worker = cluster.node(3)
    suffix = uuid.uuid4().hex[:6]
    with cluster.manager.client() as manager, worker.client() as node3:
        # Never built or loaded on the worker: it can only come from the registry.
        with pytest.raises(docker.errors.ImageNotFound):
            node3.images.get(smoke_image)
        network = manager.networks.create(f"hrsmoke-{suffix}", driver="overlay", attachable=True)
        service = manager.services.create(
            smoke_image,
            ["sh", "-c", SERVE],
            name=f"hrsmoke-web-{suffix}",
            networks=[network.id],
            mode=docker.types.ServiceMode("replicated", replicas=2),
            endpoint_spec=EndpointSpec(mode="dnsrr"),  # no IPVS on this kernel
            constraints=["node.labels.homerun.cluster.node==node3"],
        )
        try:

            def running() -> list[dict[str, object]] | None:
                tasks = [
                    t
                    for t in service.tasks(filters={"desired-state": "running"})
                    if t["Status"]["State"] == "running"
                ]
                return tasks if len(tasks) == 2 else None

            tasks = wait_for(running, timeout=120, interval=0.5, message="2 tasks running")
            assert {t["NodeID"] for t in tasks} == {worker.id}
            containers = {t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in tasks}
            pulled = node3.images.get(smoke_image)
            assert any(
                d.startswith(smoke_image.rsplit(":", 1)[0] + "@sha256:")
                for d in pulled.attrs["RepoDigests"]
            ), pulled.attrs["RepoDigests"]

            # From a container on the manager, over the overlay (VXLAN between namespaces):
            # each replica answers with its own hostname, the id of a container on node3.
            answer = manager.containers.run(
                smoke_image,
                ["sh", "-c", FETCH_EACH.format(service=service.name)],
                network=network.name,
                remove=True,
            ).decode()
            assert set(answer.split()) == containers, answer
        finally:
            service.remove()
            # The network can go once the service's tasks have left it.
            wait_for(
                lambda: _remove_network(manager, network.id),
                timeout=60,
                interval=0.5,
                message="smoke network removed",
            )


def _remove_network(client: docker.DockerClient, network_id: str) -> bool:
    try:
        client.networks.get(network_id).remove()
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        return False  # still in use by a task being torn down
    return True


def test_a_killed_node_goes_down_its_tasks_move_and_it_comes_back(
    cluster: Cluster, smoke_image: str
) -> None:
    with cluster.manager.client() as manager:
        service = manager.services.create(
            smoke_image,
            ["sleep", "3600"],
            name=f"hrsmoke-sleep-{uuid.uuid4().hex[:6]}",
            mode=docker.types.ServiceMode("replicated", replicas=2),
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            constraints=["node.labels.homerun.runner==true"],
            # One per runner node, so each of node2 and node3 holds one.
            maxreplicas=1,
        )
        try:

            def nodes_running() -> set[str]:
                return {
                    t["NodeID"]
                    for t in service.tasks(filters={"desired-state": "running"})
                    if t["Status"]["State"] == "running"
                }

            wait_for(
                lambda: nodes_running() == {cluster.node(2).id, cluster.node(3).id},
                timeout=120,
                interval=0.5,
                message="one task on each runner node",
            )
            cluster.kill(3)
            cluster.wait_node(3, "down", timeout=60)
            cluster.start(3)
            cluster.wait_node(3, "ready", timeout=60)
            # Back in the Swarm: the scheduler places the pending task on node3 again.
            wait_for(
                lambda: nodes_running() == {cluster.node(2).id, cluster.node(3).id},
                timeout=120,
                interval=0.5,
                message="the task back on node3",
            )
        finally:
            service.remove()

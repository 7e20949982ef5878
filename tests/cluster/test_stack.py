"""The homerun stack across three nodes (issue 6): placement by node labels, images through
the registry the stack runs on the Swarm, a 20-task pipeline across runners on two nodes
surviving the loss of one of them, reads surviving the loss of the replica's node and of the
primary's, and the stack converging when the nodes come back.

The stack is deployed by ``scripts/cluster.sh deploy`` (see the fixture) with the settings
a multi-node Swarm takes (no registry configured, so ``make up`` runs one on the Swarm;
``--placement-labels``) plus what this one machine needs: dnsrr and host-mode ports (no
IPVS; up.sh's preflight picks them), each runner's socket named after its node
(``/var/run/docker-{{.Node.Hostname}}.sock``, a Swarm mount template) because the test nodes
share the host's filesystem (on real nodes the default /var/run/docker.sock is right), and a
forward from the host's loopback to node1's registry port for the push.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stack.topology import DEFAULT_TAG, REGISTRY_USER
from tests.cluster.conftest import ROOT, STACK, Cluster
from tests.conftest import wait_for

PORT = 8000  # bound in each node's own network namespace: no clash with the host
PY = str(ROOT / ".venv" / "bin" / "python")
TASK_LABEL = "homerun.task"  # runners/containers.py LABEL_TASK
DEPLOY_TIMEOUT_S = 600
WORKERS = 18  # + a first and a last task: a pipeline of 20
# What the registry may answer a manifest as (docker push of a local image: v2 schema 2).
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
STACK_REGISTRY = "127.0.0.1:5000"  # the stack's own registry, on every node's loopback


@dataclass(frozen=True)
class ClusterStack:
    cluster: Cluster
    token: str
    env: dict[str, str]  # DOCKER_HOST is the manager's

    def url(self, node: int) -> str:
        # The edge proxy runs on every node with the API port bound on the node itself.
        return f"http://{self.cluster.node(node).ip}:{PORT}"

    def http(self, node: int, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url(node),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=kwargs.pop("timeout", 15.0),
            **kwargs,
        )

    def service(self, key: str) -> str:
        return f"{STACK}_{key}"

    def placement(self, key: str) -> list[int]:
        """The node index of every running task of a service, sorted."""
        with self.cluster.manager.client() as client:
            tasks = client.services.get(self.service(key)).tasks(
                filters={"desired-state": "running"}
            )
        return sorted(
            self.cluster.node_of(t["NodeID"]).index
            for t in tasks
            if t["Status"]["State"] == "running"
        )

    def converged(self, timeout: float = DEPLOY_TIMEOUT_S) -> None:
        """Every service at its replica count and healthy (scripts/stackctl.py wait)."""
        run(
            [PY, "scripts/stackctl.py", "wait", STACK, "--timeout", str(timeout)],
            self.env,
            timeout + 60,
        )

    def sql(self, query: str) -> list[list[str]]:
        """A query on the primary, through psql in its container on node1."""
        label = f"com.docker.swarm.service.name={self.service('postgres-primary')}"
        with self.cluster.node(1).client() as client:
            (container,) = client.containers.list(filters={"label": label})
            # Over TCP with the password from its secret: local connections are peer-only.
            code, out = container.exec_run(
                [
                    "sh",
                    "-c",
                    'PGPASSWORD="$(cat /run/secrets/db-password)" exec psql '
                    '-h 127.0.0.1 -U homerun -d homerun -At -F "|" -c "$0"',
                    query,
                ]
            )
        assert code == 0, out.decode()
        return [line.split("|") for line in out.decode().splitlines() if line]


def run(cmd: list[str], env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, text=True, capture_output=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def deployed(cluster: Cluster) -> Iterator[ClusterStack]:
    """``scripts/cluster.sh deploy``: the images built by the host's engine (`make images`),
    then ``scripts/up.sh`` (what `make up` runs) against the manager with the placement
    labels and no registry configured: it deploys the stack's own registry first, pushes the
    images to it (through the cluster's forward to node1), deploys the rest, waits for every
    service to be healthy and runs its sample job through node1's address. Nothing is copied
    between engines: each node pulls what its tasks need."""
    env = {
        **cluster.env,
        "HOMERUN_API_PORT": str(PORT),
        "HOMERUN_UP_TIMEOUT": str(DEPLOY_TIMEOUT_S),
        # Two runners (one per runner node), each running two tasks at a time.
        "HOMERUN_COMPOSE_ARGS": "--api-replicas 2 --runner-replicas 2 --runner-concurrency 2",
    }
    state = ROOT / ".homerun" / "stacks" / STACK
    run([str(ROOT / "scripts" / "cluster.sh"), "deploy", STACK], env, 3600 + DEPLOY_TIMEOUT_S)
    token = (state / "secrets" / "admin-token").read_text().strip()
    yield ClusterStack(cluster, token, {**os.environ, "DOCKER_HOST": cluster.manager.host})
    # `cluster.sh down` removes the engines with all they hold, and the stack's secrets and
    # work directory on the host; the session's leftover check proves it.


@pytest.fixture(autouse=True)
def nodes_back(deployed: ClusterStack) -> Iterator[None]:
    """Whatever a test did, every node runs again and the stack has converged after it, so a
    failure in one test is not carried into the next. (`start` of a running node is a no-op.)
    """
    yield
    for node in deployed.cluster.nodes:
        deployed.cluster.start(node.index)
    for node in deployed.cluster.nodes:
        deployed.cluster.wait_node(node.index, "ready", timeout=120)
    deployed.converged()


def submit(http: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    resp = http.post("/v1/jobs", json=job)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def wait_job(http: httpx.Client, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        return dict(job) if job["status"] in ("succeeded", "failed", "cancelled") else None

    return dict(wait_for(done, timeout=timeout, interval=1, message=f"job {job_id} to end"))


def test_services_land_on_their_labelled_nodes(deployed: ClusterStack) -> None:
    # node1: postgres=primary, redis; node2: postgres=replica, runner; node3: runner.
    assert deployed.placement("postgres-primary") == [1]
    assert deployed.placement("postgres-replica") == [2]
    assert deployed.placement("redis-queue") == [1]
    assert deployed.placement("redis-events") == [1]
    assert deployed.placement("runner") == [2, 3]
    assert deployed.placement("edge") == [1, 2, 3]  # global: every node answers on the port
    assert deployed.placement("registry") == [1]  # homerun.registry=true, with its volume
    assert deployed.placement("registry-proxy") == [1, 2, 3]  # 127.0.0.1:5000 on every node
    api = deployed.placement("api")
    assert len(api) == 2 and len(set(api)) == 2, api  # spread by the scheduler
    for node in (1, 2, 3):
        with deployed.http(node) as http:
            assert http.get("/healthz").status_code == 200


def test_every_node_gets_homeruns_images_from_the_stacks_registry(
    deployed: ClusterStack,
) -> None:
    """No registry was configured: services name their images in the registry the stack runs
    (127.0.0.1:5000 on every node), nodes hold homerun's images under that name only, and the
    runners pulled their task images from it themselves on first use."""
    with deployed.cluster.manager.client() as client:
        images = {
            s.name: s.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            for s in client.services.list(filters={"label": f"com.docker.stack.namespace={STACK}"})
        }
    for name, image in images.items():
        if name in (deployed.service("registry"), deployed.service("registry-proxy")):
            # Official images, from the Hub (here: the cluster's stand-in of it).
            assert image.split("@")[0] in ("registry:2", "haproxy:2.6"), (name, image)
        else:
            assert image.startswith(f"{STACK_REGISTRY}/homerun/"), (name, image)
    task_image_nodes = []
    for node in deployed.cluster.nodes:
        with node.client() as client:
            tags = [t for i in client.images.list() for t in i.tags]
        assert not [t for t in tags if t.startswith("homerun/")], (node.index, tags)
        if any(t.startswith(f"{STACK_REGISTRY}/homerun/task-shell:") for t in tags):
            task_image_nodes.append(node.index)
    # The sample job of `make up` ran a shell task: its runner's node pulled the task image.
    assert task_image_nodes, "no node pulled homerun/task-shell from the stack's registry"
    # The cluster's Hub stand-in holds the two official images (and the smoke test's
    # busybox of test_cluster.py) and nothing of homerun's.
    catalog = httpx.get(f"http://{deployed.cluster.registry_push}/v2/_catalog").json()
    repositories = set(catalog["repositories"])
    assert {"library/haproxy", "library/registry"} <= repositories, catalog
    assert not [r for r in repositories if r.startswith("homerun/")], catalog


def test_the_stacks_registry_answers_nobody_without_its_password(deployed: ClusterStack) -> None:
    """Port 5000 of every node reaches the stack's registry (registry-proxy, host mode): a
    stranger on the nodes' network gets 401 for the catalog, the runner's image and a
    delete; user homerun with the stack's registry-password reads it, and deletes are off."""
    password = (ROOT / ".homerun" / "stacks" / STACK / "secrets" / "registry-password").read_text()
    login = (REGISTRY_USER, password.strip())
    for node in deployed.cluster.nodes:
        base = f"http://{node.ip}:5000/v2"
        manifest = f"{base}/homerun/app/manifests/{DEFAULT_TAG}"
        assert httpx.get(f"{base}/_catalog", timeout=10).status_code == 401, node.index
        assert httpx.get(manifest, timeout=10).status_code == 401, node.index
        assert httpx.delete(manifest, timeout=10).status_code == 401, node.index
        catalog = httpx.get(f"{base}/_catalog", auth=login, timeout=10)
        assert catalog.status_code == 200, node.index
        assert "homerun/app" in catalog.json()["repositories"]
    # With the password, deletes are still refused (REGISTRY_STORAGE_DELETE_ENABLED unset).
    head = httpx.head(manifest, auth=login, timeout=10, headers={"Accept": MANIFEST_TYPES})
    assert head.status_code == 200, head
    digest = head.headers["Docker-Content-Digest"]
    gone = httpx.delete(f"{base}/homerun/app/manifests/{digest}", auth=login, timeout=10)
    assert gone.status_code == 405, gone.text


def _pipeline() -> dict[str, Any]:
    work = [
        {
            "name": f"work-{i:02d}",
            "type": "shell",
            "payload": {"script": f"sleep 4; echo work-{i:02d} on $(hostname)"},
            "depends_on": ["first"],
            "max_attempts": 3,
        }
        for i in range(WORKERS)
    ]
    return {
        "name": "cluster-pipeline",
        "tasks": [
            {"name": "first", "type": "shell", "payload": {"script": "echo first"}},
            *work,
            {
                "name": "last",
                "type": "shell",
                "payload": {"script": "echo last"},
                "depends_on": [w["name"] for w in work],
            },
        ],
    }


def _task_containers(cluster: Cluster, node: int) -> dict[str, str]:
    """task id -> container id, for the task containers running on a node's engine."""
    with cluster.node(node).client() as client:
        return {
            c.labels[TASK_LABEL]: c.id
            for c in client.containers.list(filters={"label": TASK_LABEL})
        }


def _runner_containers(deployed: ClusterStack) -> dict[str, int]:
    """The runner id (its container's hostname, the short id) -> the node it runs on."""
    with deployed.cluster.manager.client() as client:
        tasks = client.services.get(deployed.service("runner")).tasks()
    return {
        t["Status"]["ContainerStatus"]["ContainerID"][:12]: deployed.cluster.node_of(
            t["NodeID"]
        ).index
        for t in tasks
        if t["Status"].get("ContainerStatus", {}).get("ContainerID")
    }


def test_pipeline_survives_the_loss_of_a_runner_node(deployed: ClusterStack) -> None:
    cluster = deployed.cluster
    runners = _runner_containers(deployed)
    with deployed.http(1) as http:
        job = submit(http, _pipeline())
        ids = {t["name"]: t["id"] for t in job["tasks"]}
        assert len(ids) == WORKERS + 2 == 20

        # Mid-pipeline: both runner nodes are running tasks of the job.
        def busy_on_both() -> dict[str, str] | None:
            on3 = {t: c for t, c in _task_containers(cluster, 3).items() if t in ids.values()}
            on2 = {t for t in _task_containers(cluster, 2) if t in ids.values()}
            return on3 if on3 and on2 else None

        in_flight_on_3 = wait_for(
            busy_on_both,
            timeout=180,
            interval=0.3,
            message="tasks running on node2 and node3 at once",
        )
        cluster.kill(3)
        killed_at = time.monotonic()

        final = wait_job(http, job["id"], timeout=400)
        assert final["status"] == "succeeded", final
        assert {t["status"] for t in final["tasks"]} == {"succeeded"}, final["tasks"]

        details = {
            name: http.get(f"/v1/jobs/{job['id']}/tasks/{tid}").raise_for_status().json()
            for name, tid in ids.items()
        }
    # Every task has exactly one successful result: the lost attempts left none, and nothing
    # ran to success twice. (A failed attempt keeps its own result, with its error.)
    rows = deployed.sql(
        "SELECT r.task_id, r.attempt, a.status, a.runner_id, r.exit_code, coalesce(r.error, '')"
        " FROM results r JOIN tasks t ON t.id = r.task_id"
        " JOIN attempts a ON a.task_id = r.task_id AND a.number = r.attempt"
        f" WHERE t.job_id = '{job['id']}' ORDER BY r.task_id, r.attempt"
    )
    succeeded = [r[0] for r in rows if r[2] == "succeeded"]
    assert sorted(succeeded) == sorted(ids.values()), rows
    others = [r for r in rows if r[2] != "succeeded"]
    print(f"pipeline: {len(rows)} results, of failed attempts: {others}")
    for i in range(WORKERS):
        assert details[f"work-{i:02d}"]["result"]["stdout"].startswith(f"work-{i:02d} on ")

    # The pipeline ran on runners of both nodes ...
    attempt_nodes = {runners.get(a["runner_id"]) for d in details.values() for a in d["attempts"]}
    assert {2, 3} <= attempt_nodes, (runners, attempt_nodes)
    # ... and each task caught on node3 lost that attempt and succeeded on another runner.
    by_id = {d["id"]: d for d in details.values()}
    for task_id in in_flight_on_3:
        attempts = by_id[task_id]["attempts"]
        assert len(attempts) >= 2, attempts
        assert runners.get(attempts[0]["runner_id"]) == 3 and attempts[0]["status"] != "succeeded"
        assert attempts[-1]["status"] == "succeeded"
        assert runners.get(attempts[-1]["runner_id"]) != 3, attempts
    print(f"pipeline done {time.monotonic() - killed_at:.0f} s after node3 was killed")

    # node3 comes back and the stack converges without anyone touching it.
    cluster.start(3)
    cluster.wait_node(3, "ready")
    deployed.converged()
    with deployed.http(3) as http:
        wait_for(
            lambda: http.get("/healthz").status_code == 200,
            timeout=60,
            interval=0.5,
            message="node3's edge answering again",
        )


def _replica(http: httpx.Client) -> dict[str, Any]:
    return dict(http.get("/readyz").json()["replica"])


def test_reads_keep_working_when_the_replicas_node_is_lost(deployed: ClusterStack) -> None:
    cluster = deployed.cluster
    assert deployed.placement("postgres-replica") == [2]
    failures: list[tuple[str, int | str]] = []

    def read(http: httpx.Client, path: str) -> bool:
        try:
            resp = http.get(path)
        except httpx.HTTPError as exc:
            failures.append((path, repr(exc)))
            return False
        if resp.status_code != 200:
            failures.append((path, resp.status_code))
        return resp.status_code == 200

    # Through node1's edge: node1 holds the primary and stays up.
    with deployed.http(1, timeout=10.0) as http:
        job = submit(http, {"tasks": [{"type": "shell", "payload": {"script": "echo before"}}]})
        assert wait_job(http, job["id"])["status"] == "succeeded"
        wait_for(
            lambda: _replica(http)["up"] is True,
            timeout=60,
            interval=0.5,
            message="the replica in use before the loss",
        )

        cluster.kill(2)
        lost_at = time.monotonic()

        def replica_down_and_reads_served() -> bool:
            ok = read(http, f"/v1/jobs/{job['id']}") and read(http, "/v1/jobs?limit=5")
            state = _replica(http)
            return ok and state["up"] is False and int(state["fallbacks"]) > 0

        wait_for(
            replica_down_and_reads_served,
            timeout=120,
            interval=0.3,
            message="reads answered by the primary with the replica's node gone",
        )
        settled_at = time.monotonic()
        during = list(failures)
        failures.clear()
        for _ in range(30):
            read(http, f"/v1/jobs/{job['id']}")
            read(http, "/v1/jobs?limit=5")
        # A new job is accepted, read back at once and run by the runners now on node3.
        new = submit(http, {"tasks": [{"type": "shell", "payload": {"script": "echo after"}}]})
        read(http, f"/v1/jobs/{new['id']}")
        assert wait_job(http, new["id"])["status"] == "succeeded"
        assert failures == [], failures
        print(
            f"replica loss: reads served by the primary {settled_at - lost_at:.1f} s after "
            f"the node was killed; failed reads before that: {during}"
        )

        # The node returns: the replica streams again and reads go back to it by themselves.
        cluster.start(2)
        cluster.wait_node(2, "ready")
        deployed.converged()
        assert deployed.placement("postgres-replica") == [2]
        wait_for(
            lambda: read(http, f"/v1/jobs/{job['id']}") and _replica(http)["up"] is True,
            timeout=180,
            interval=0.5,
            message="the replica in use again",
        )
        assert failures == [], failures


def test_losing_the_primarys_node_stops_writes_and_everything_resumes(
    deployed: ClusterStack,
) -> None:
    """node1 holds the primary, both Redis, the registry and the Swarm's only manager: a
    write outage that ends by itself when the node returns, with no accepted job lost, while
    reads go on."""
    cluster = deployed.cluster
    slow = {"tasks": [{"type": "shell", "payload": {"script": "sleep 3; echo done"}}]}
    accepted: list[str] = []
    # Through node3's edge: node3 keeps running while node1 is gone.
    with deployed.http(3, timeout=10.0) as http:
        accepted.append(submit(http, slow)["id"])
        cluster.kill(1)
        lost_at = time.monotonic()

        def write_refused() -> httpx.Response | None:
            try:
                resp = http.post("/v1/jobs", json=slow)
            except httpx.HTTPError:
                return None  # the API task behind this request was on node1
            if resp.status_code == 201:
                accepted.append(resp.json()["id"])  # accepted before the API noticed
            return resp if resp.status_code == 503 else None

        refused = wait_for(
            write_refused, timeout=120, interval=0.5, message="writes refused with a 503"
        )
        body = refused.json()
        print(
            f"primary loss: writes refused {time.monotonic() - lost_at:.1f} s after node1 "
            f"was killed: {body}"
        )
        assert body["error"]["message"], body

        # Reads go on, answered by the replica on node2 (the queue Redis that marks recent
        # writers is gone with node1 too, so every read is one meant for the primary).
        def reads_answered() -> bool:
            try:
                one = http.get(f"/v1/jobs/{accepted[0]}")
                some = http.get("/v1/jobs?limit=5")
            except httpx.HTTPError:
                return False  # an API task on node1, not yet dropped by the edge
            return one.status_code == 200 and some.status_code == 200

        wait_for(reads_answered, timeout=60, interval=0.5, message="reads answered")
        for _ in range(10):
            one = http.get(f"/v1/jobs/{accepted[0]}")
            assert one.status_code == 200 and one.json()["id"] == accepted[0], one.text
        # (Asked until the API task that answered them does: the edge spreads requests.)
        wait_for(
            lambda: _replica(http)["primary_fallbacks"] > 0,
            timeout=10,
            interval=0.2,
            message="reads counted as answered by the replica for the primary",
        )
        print(f"primary loss: reads answered by the replica {time.monotonic() - lost_at:.1f} s in")

        cluster.start(1)
        cluster.wait_node(1, "ready", timeout=120)
        deployed.converged()

        def write_accepted() -> bool:
            resp = http.post("/v1/jobs", json=slow)
            if resp.status_code == 201:
                accepted.append(resp.json()["id"])
            return resp.status_code == 201

        wait_for(write_accepted, timeout=120, interval=1, message="writes accepted again")
        for job_id in accepted:
            assert wait_job(http, job_id)["status"] == "succeeded", job_id

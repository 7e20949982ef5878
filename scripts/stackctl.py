"""What `make up` / `make down` and the e2e tests do to a deployed stack, beyond `docker stack`.

    python scripts/stackctl.py wait STACK [--timeout S]        until every service is healthy
    python scripts/stackctl.py refresh STACK                   restart services whose image tag
                                                               now names another image
    python scripts/stackctl.py sample-job URL TOKEN_FILE       submit the sample job, wait for it
    python scripts/stackctl.py leftovers STACK                 list the stack's objects, if any
    python scripts/stackctl.py remove STACK [--purge]          remove them all (and its volumes)
    python scripts/stackctl.py preflight STACK SECRETS_DIR [--rotate KEY]
                                                               before a deploy: stop if this
                                                               machine's secrets are not the
                                                               running stack's
    python scripts/stackctl.py prune STACK                     remove the stack's secrets and
                                                               configs no service uses any more

Everything here finds a stack's objects by the label `docker stack deploy` puts on each
(com.docker.stack.namespace) or by the exact names stack/topology.py gives them (what the
Pulumi program creates carries no such label), so it never touches another stack or anything
else on the engine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
from docker.errors import APIError, NotFound

# Run as a script from anywhere: the project root holds the `stack` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stack import secretfiles
from stack.model import EndpointMode, PublishMode, converge_timeout_s
from stack.topology import DERIVED_SECRET_KEYS, SECRET_KEYS, StackConfig, build_topology

NAMESPACE = "com.docker.stack.namespace"
SERVICE_LABEL = "com.docker.swarm.service.name"
# One shell task that also shows what the task sees; the Idempotency-Key makes a second
# `make up` find the job of the first one instead of creating another.
SAMPLE_JOB = {
    "name": "make-up-sample",
    "labels": {"source": "make-up"},
    "tasks": [{"name": "hello", "type": "shell", "payload": {"script": "echo hello from homerun"}}],
}
SAMPLE_KEY = "make-up-sample-1"
TERMINAL = {"succeeded", "failed", "cancelled"}


def _client() -> docker.DockerClient:
    return docker.from_env(timeout=60)


def _say(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


def deadline_loop(timeout: float, interval: float) -> Iterable[float]:
    """Yield the seconds elapsed, every ``interval``, until ``timeout``; then stop."""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < timeout:
        yield elapsed
        time.sleep(interval)


# --------------------------------------------------------------------------- health


@dataclass(frozen=True)
class ServiceState:
    name: str
    desired: int
    healthy: int
    starting: int
    updating: bool
    error: str

    @property
    def ready(self) -> bool:
        return self.healthy >= self.desired and self.starting == 0 and not self.updating

    def describe(self) -> str:
        mark = "ok" if self.ready else "updating" if self.updating else "waiting"
        extra = f" ({self.error})" if self.error and not self.ready else ""
        return f"{self.name} {self.healthy}/{self.desired} {mark}{extra}"


def _container_health(client: docker.DockerClient, container_id: str) -> str:
    """healthy | starting | unhealthy | none (no health check) | remote (not on this node)."""
    try:
        state = client.api.inspect_container(container_id)["State"]
    except NotFound:
        return "remote"
    return str(state.get("Health", {}).get("Status", "none"))


def service_states(client: docker.DockerClient, stack: str) -> list[ServiceState]:
    states = []
    for svc in client.services.list(filters={"label": f"{NAMESPACE}={stack}"}):
        spec = svc.attrs["Spec"]
        tasks = svc.tasks(filters={"desired-state": "running"})
        if "Replicated" in spec["Mode"]:
            desired = int(spec["Mode"]["Replicated"].get("Replicas", 1))
        else:  # global: one per eligible node, which is what the orchestrator scheduled
            desired = len(tasks)
        healthy = starting = 0
        error = ""
        for task in tasks:
            status = task.get("Status", {})
            if status.get("State") != "running":
                error = status.get("Err") or status.get("State", "")
                continue
            cid = status.get("ContainerStatus", {}).get("ContainerID", "")
            health = _container_health(client, cid) if cid else "remote"
            if health in ("healthy", "none", "remote"):
                healthy += 1
            else:
                starting += 1
                error = health
        if not error:
            # A task that failed and is being replaced explains a wait better than silence.
            for task in svc.tasks():
                err = task.get("Status", {}).get("Err")
                if err and task.get("DesiredState") == "shutdown":
                    error = f"last failure: {err}"
                    break
        update = svc.attrs.get("UpdateStatus", {}).get("State", "")
        states.append(
            ServiceState(
                name=spec["Name"],
                desired=desired,
                healthy=healthy,
                starting=starting,
                updating=update in ("updating", "rollback_started"),
                error=error,
            )
        )
    return sorted(states, key=lambda s: s.name)


def wait_healthy(stack: str, timeout: float, say: Callable[[str], None] = _say) -> None:
    """Block until every service of the stack is healthy, showing progress: a line whenever
    the set of healthy services changes, and every 15 s what is still awaited and why."""
    client = _client()
    last_ready: set[str] | None = None
    last_detail = -15.0
    states: list[ServiceState] = []
    for elapsed in deadline_loop(timeout, 1.0):
        states = service_states(client, stack)
        ready = {s.name for s in states if s.ready}
        waiting = [s for s in states if not s.ready]
        if ready != last_ready or elapsed - last_detail >= 15:
            short = ", ".join(s.describe() for s in waiting) or "none"
            say(f"[{elapsed:4.0f}s] {len(ready)}/{len(states)} services healthy; waiting: {short}")
            last_ready, last_detail = ready, elapsed
        if states and not waiting:
            return
    for s in states:
        if not s.ready:
            say(f"NOT HEALTHY: {s.describe()}")
            _print_logs(stack, s.name)
    raise SystemExit(f"stack {stack}: not healthy within {timeout:.0f}s")


def _print_logs(stack: str, service: str) -> None:
    subprocess.run(
        ["docker", "service", "logs", "--raw", "--tail", "15", service],
        stdout=sys.stderr,
        stderr=sys.stderr,
        check=False,
        timeout=30,
    )


# --------------------------------------------------------------------------- images


def refresh(stack: str) -> list[str]:
    """Force an update of each service whose containers run another image than its tag names now.

    `docker stack deploy` with an unchanged spec changes nothing, which is what a second
    `make up` wants, but with locally built images (no registry digest to pin) it also means
    a rebuilt image would never be rolled out. Comparing image IDs catches exactly that case.
    """
    client = _client()
    updated = []
    for svc in client.services.list(filters={"label": f"{NAMESPACE}={stack}"}):
        ref = svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        if "@" in ref:
            continue  # pinned to a registry digest: the deploy already rolled it out
        try:
            want = client.images.get(ref).id
        except NotFound:
            continue
        running = set()
        for task in svc.tasks(filters={"desired-state": "running"}):
            cid = task.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
            if cid:
                try:
                    running.add(client.api.inspect_container(cid)["Image"])
                except NotFound:
                    pass
        if running and running != {want}:
            svc.force_update()
            updated.append(svc.name)
            _say(f"{svc.name}: image {ref} was rebuilt, rolling it out")
    return updated


# --------------------------------------------------------------------------- sample job


def sample_job(url: str, token: str, timeout: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": SAMPLE_KEY}
    with httpx.Client(base_url=url, headers=headers, timeout=10.0) as http:
        # Healthy API tasks are not yet in the edge's view of them: it resolves and checks
        # its backends every second, and answers 503 until it has one. The Idempotency-Key
        # makes asking again safe.
        resp = None
        for _ in deadline_loop(timeout, 0.5):
            try:
                resp = http.post("/v1/jobs", json=SAMPLE_JOB)
            except httpx.TransportError:
                continue
            if resp.status_code not in (502, 503, 504):
                break
        if resp is None:
            raise SystemExit(f"the API at {url} did not answer within {timeout:g}s")
        if resp.status_code not in (200, 201):
            raise SystemExit(f"sample job refused: {resp.status_code} {resp.text}")
        job = resp.json()
        _say(f"sample job {job['id']} {'submitted' if resp.status_code == 201 else 'exists'}")
        for _ in deadline_loop(timeout, 0.5):
            job = http.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
            if job["status"] in TERMINAL:
                break
        if job["status"] != "succeeded":
            raise SystemExit(f"sample job ended {job['status']}: {json.dumps(job)}")
        task = job["tasks"][0]
        detail = http.get(f"/v1/jobs/{job['id']}/tasks/{task['id']}").raise_for_status().json()
        _say(f"sample job succeeded: {json.dumps(detail.get('result', detail))[:300]}")
        return dict(job)


# --------------------------------------------------------------------------- removal


def leftovers(stack: str) -> dict[str, list[str]]:
    """The stack's services, networks, secrets and configs (and volumes) still on the engine."""
    client = _client()
    label = {"label": f"{NAMESPACE}={stack}"}
    found = {
        "services": [s.name for s in client.services.list(filters=label)],
        "networks": [n.name for n in client.networks.list(filters=label)],
        "secrets": [s.name for s in client.secrets.list(filters=label)],
        "configs": [c.name for c in client.configs.list(filters=label)],
        "volumes": [v.name for v in client.volumes.list(filters=label)],
    }
    # Objects made by the Pulumi program carry the topology's names but not Docker's label.
    # Every optional part included (the registry and its per-node proxy), whatever this
    # stack was deployed with. Secrets are named <stack>_<key>-<digest> (stack.secretfiles).
    topo = build_topology(
        StackConfig(
            stack=stack,
            run_registry=True,
            endpoint_mode=EndpointMode.DNSRR,
            publish_mode=PublishMode.HOST,
        )
    )
    names = {
        "services": {s.name for s in topo.services},
        "networks": {n.name for n in topo.networks},
        "secrets": {s.name for s in topo.secrets},
        "volumes": {v.name for v in topo.volumes},
    }
    # A config's name ends in a digest of its content: <stack>_<key>-<digest>.
    config_prefixes = tuple(f"{stack}_{c.key}-" for c in topo.configs)
    found["services"] += [s.name for s in client.services.list() if s.name in names["services"]]
    found["networks"] += [n.name for n in client.networks.list() if n.name in names["networks"]]
    found["secrets"] += [
        s.name
        for s in client.secrets.list()
        if secretfiles.base_name(s.name, names["secrets"]) is not None
    ]
    found["volumes"] += [v.name for v in client.volumes.list() if v.name in names["volumes"]]
    found["configs"] += [
        c.name for c in client.configs.list() if c.name.startswith(config_prefixes)
    ]
    return {kind: sorted(set(names)) for kind, names in found.items()}


def remove(stack: str, purge: bool, timeout: float) -> None:
    """Remove the stack's services, then its networks, secrets and configs; volumes if purge."""
    client = _client()
    services = leftovers(stack)["services"]
    for name in services:
        try:
            client.services.get(name).remove()
        except NotFound:
            pass

    # A service's containers outlive its removal by their stop grace period; networks and
    # volumes stay in use until they are gone. The low-level list: the high-level one
    # inspects each container, which races with the very removals awaited here.
    def containers_left() -> bool:
        return any(
            client.api.containers(all=True, filters={"label": f"{SERVICE_LABEL}={name}"})
            for name in services
        )

    for _ in deadline_loop(timeout, 0.5):
        if not containers_left():
            break
    else:
        raise SystemExit(f"stack {stack}: containers still present after {timeout:.0f}s")
    objects = leftovers(stack)
    kinds: list[tuple[str, Callable[[str], Any]]] = [
        ("secrets", lambda n: client.secrets.get(n).remove()),
        ("configs", lambda n: client.configs.get(n).remove()),
        ("networks", lambda n: client.networks.get(n).remove()),
    ]
    if purge:
        kinds.append(("volumes", lambda n: client.volumes.get(n).remove()))
    for kind, rm in kinds:
        for name in objects[kind]:
            _remove_with_retry(rm, name, timeout)
            _say(f"removed {kind[:-1]} {name}")


def _remove_with_retry(rm: Callable[[str], Any], name: str, timeout: float) -> None:
    last: Exception | None = None
    for _ in deadline_loop(timeout, 0.5):
        try:
            rm(name)
            return
        except NotFound:
            return
        except APIError as exc:  # "in use" until the engine has let go of it
            last = exc
    raise SystemExit(f"could not remove {name}: {last}")


# --------------------------------------------------------------------------- converging


def default_timeout(stack: str) -> float:
    """The slowest first start of any service of the stack (stack.model.converge_timeout_s),
    the budget the Pulumi program gives the provider too."""
    topo = build_topology(StackConfig(stack=stack, run_registry=True))
    return max(converge_timeout_s(svc) for svc in topo.services)


def _secret_bases(stack: str) -> dict[str, str]:
    """Secret key -> its base name <stack>_<key>, for every secret any config may have."""
    return {key: f"{stack}_{key}" for key in (*SECRET_KEYS, *DERIVED_SECRET_KEYS)}


def _in_use(client: docker.DockerClient, stack: str) -> dict[str, set[str]]:
    """Base name -> the names of the secrets of that key the stack's services use now."""
    bases = list(_secret_bases(stack).values())
    used: dict[str, set[str]] = {}
    for svc in client.services.list():
        if not svc.name.startswith(f"{stack}_"):
            continue
        spec = svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        for ref in spec.get("Secrets") or ():
            base = secretfiles.base_name(ref["SecretName"], bases)
            if base:
                used.setdefault(base, set()).add(ref["SecretName"])
    return used


def preflight(stack: str, secrets_dir: Path, rotate: str | None) -> list[str]:
    """Why deploying from this machine would break the running stack, if it would: secret
    files missing here (a lost .homerun/, a second checkout), or holding other values than
    the running services use (which would roll, say, a new database password onto a
    Postgres that has the old one). Nothing is changed either way; [] means go ahead."""
    client = _client()
    used = _in_use(client, stack)
    if not used:
        return []  # a new stack (or one using no secrets yet): nothing to agree with
    naming_key = secretfiles.read_naming_key(secrets_dir)
    values = secretfiles.read(secrets_dir)
    problems: list[str] = []
    for key, base in _secret_bases(stack).items():
        names = used.get(base)
        # A derived secret (the registry's htpasswd) rotates with its source.
        if not names or rotate in (key, DERIVED_SECRET_KEYS.get(key, ("",))[0]):
            continue
        if key not in values or naming_key is None:
            missing = key if key not in values else secretfiles.NAMING_KEY
            problems.append(f"{secrets_dir / missing} is missing; the stack uses {sorted(names)}")
            continue
        want = secretfiles.versioned_name(base, naming_key, secretfiles.normalize(values[key]))
        if names == {base}:
            continue  # deployed before names carried a digest: nothing to compare with
        if names != {want}:
            problems.append(
                f"{secrets_dir / key} holds another value than the stack's {sorted(names)}"
            )
    return problems


def prune(stack: str) -> list[str]:
    """Remove the stack's secrets and configs that no service refers to any more: what a
    rotation or a changed config left behind (Swarm keeps them; one in use cannot go)."""
    client = _client()
    objects = leftovers(stack)
    used: set[str] = set()
    for svc in client.services.list():
        spec = svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        used |= {r["SecretName"] for r in spec.get("Secrets") or ()}
        used |= {r["ConfigName"] for r in spec.get("Configs") or ()}
    if not any(s.name.startswith(f"{stack}_") for s in client.services.list()):
        return []  # no stack: `make down` removes objects, this only tidies after an update
    removed = []
    kinds: list[tuple[str, Callable[[str], Any]]] = [
        ("secrets", lambda n: client.secrets.get(n).remove()),
        ("configs", lambda n: client.configs.get(n).remove()),
    ]
    for kind, rm in kinds:
        for name in objects[kind]:
            if name in used:
                continue
            try:
                rm(name)
            except NotFound:
                continue
            except APIError as exc:  # taken into use meanwhile: it stays
                _say(f"kept {kind[:-1]} {name}: {exc.explanation}")
                continue
            removed.append(name)
            _say(f"pruned {kind[:-1]} {name} (no service uses it)")
    return removed


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stackctl")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("stack")
    w.add_argument("--timeout", type=float, help="default: the slowest first start")
    r = sub.add_parser("refresh")
    r.add_argument("stack")
    j = sub.add_parser("sample-job")
    j.add_argument("url")
    j.add_argument("token_file", type=Path)
    j.add_argument("--timeout", type=float, default=120.0)
    lo = sub.add_parser("leftovers")
    lo.add_argument("stack")
    rm = sub.add_parser("remove")
    rm.add_argument("stack")
    rm.add_argument("--purge", action="store_true")
    rm.add_argument("--timeout", type=float, default=120.0)
    pf = sub.add_parser("preflight")
    pf.add_argument("stack")
    pf.add_argument("secrets_dir", type=Path)
    pf.add_argument("--rotate", help="the secret key being rotated: its change is expected")
    pr = sub.add_parser("prune")
    pr.add_argument("stack")
    args = p.parse_args(argv)

    if args.cmd == "wait":
        wait_healthy(args.stack, args.timeout or default_timeout(args.stack))
    elif args.cmd == "preflight":
        problems = preflight(args.stack, args.secrets_dir, args.rotate)
        if problems:
            for problem in problems:
                _say(f"STOP: {problem}")
            _say(
                f"stack {args.stack} is running with secrets this machine does not have; "
                "nothing was changed. Copy the secrets directory from the machine that "
                f"deployed it into {args.secrets_dir} (all of it, naming-key too) and run "
                "make up again; to change a value on purpose: make rotate SECRET=<key> "
                "(docs/operations.md, Upgrades and rotation)"
            )
            return 3
    elif args.cmd == "prune":
        prune(args.stack)
    elif args.cmd == "refresh":
        refresh(args.stack)
    elif args.cmd == "sample-job":
        sample_job(args.url, args.token_file.read_text().strip(), args.timeout)
    elif args.cmd == "leftovers":
        found = {k: v for k, v in leftovers(args.stack).items() if v}
        print(json.dumps(found, indent=2))
        return 1 if any(k != "volumes" for k in found) else 0
    elif args.cmd == "remove":
        remove(args.stack, args.purge, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

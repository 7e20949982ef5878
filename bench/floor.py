"""The floor: one hardened container through the raw Docker SDK, nothing else.

create, start, wait, logs, remove — what any runner must do at the least for one task, with
the lock-down homerun applies (no network, read-only root, no capabilities, limits), on the
same image the ``shell`` task type uses. homerun's own overhead is measured against this.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import docker

from bench.stats import Figures
from plugins.builtin import shell

LABEL = "homerun.bench"
# Items run before measuring: first-use costs (connections, page cache) are not the steady state.
WARMUP = 2


def hardened_run(client: docker.DockerClient, image: str, argv: list[str], run_id: str) -> bytes:
    """Run one container to completion and return its logs; the container is always removed."""
    container = client.containers.create(
        image,
        argv,
        name=f"homerun-bench-{uuid.uuid4().hex[:12]}",
        labels={LABEL: run_id},
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": "rw,noexec,nosuid,size=64m"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        user="65534:65534",
        pids_limit=128,
        mem_limit=256 * 1024 * 1024,
        memswap_limit=256 * 1024 * 1024,
        nano_cpus=1_000_000_000,
        log_config={"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}},
    )
    try:
        container.start()
        container.wait()
        return bytes(container.logs(stdout=True, stderr=True))
    finally:
        container.remove(force=True)


def measure(
    one: Callable[[], object], concurrency: int, samples: int, warmup: int = WARMUP
) -> Figures:
    """Run ``samples`` items with ``concurrency`` in flight; per-item latency and wall time."""
    for _ in range(warmup):
        one()
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(_: int) -> None:
        start = time.perf_counter()
        one()
        elapsed = time.perf_counter() - start
        with lock:
            latencies.append(elapsed)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(timed, range(samples)))
    return Figures(concurrency, tuple(latencies), time.perf_counter() - start)


def remove_leftovers(client: docker.DockerClient, run_id: str) -> None:
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"}):
        container.remove(force=True)


def measure_floor(
    concurrencies: list[int], samples: int, image: str = shell.IMAGE
) -> list[Figures]:
    client = docker.from_env(timeout=60)
    run_id = uuid.uuid4().hex
    argv = ["/bin/sh", "-c", "echo hello"]
    try:
        return [
            measure(lambda: hardened_run(client, image, argv, run_id), c, samples)
            for c in concurrencies
        ]
    finally:
        remove_leftovers(client, run_id)
        client.close()

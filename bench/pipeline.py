"""homerun end to end: submit a trivial ``shell`` job over HTTP, follow it until it succeeded.

Latency is what a client sees: from just before ``POST /v1/jobs`` to the moment the client
learns the job succeeded. By default it learns that from the job's event stream (SSE), the
way ``homerun submit --wait`` does; ``poll`` asks ``GET /v1/jobs/{id}`` in a loop instead,
which measures without the notifier at the price of the poll interval.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bench.floor import WARMUP, measure
from bench.stats import Figures
from homerun.client import Client, ClientConfig
from tests.harness.stack import Stack

JOB = {"tasks": [{"name": "hello", "type": "shell", "payload": {"script": "echo hello"}}]}
POLL_INTERVAL = 0.005
WaitMode = Literal["sse", "poll"]


class JobFailed(RuntimeError):
    pass


def _wait_sse(client: Client, job_id: str) -> str:
    for event in client.follow(job_id, give_up_after=60):
        if event.event in {"job.succeeded", "job.failed", "job.cancelled"}:
            return event.event.removeprefix("job.")
    raise JobFailed(f"job {job_id}: the event stream ended without a terminal event")


def _wait_poll(client: Client, job_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = str(client.get_job(job_id).status)
        if status in {"succeeded", "failed", "cancelled"}:
            return status
        time.sleep(POLL_INTERVAL)
    raise JobFailed(f"job {job_id} did not finish within 60 s")


@dataclass(frozen=True)
class Sample:
    job_id: str
    submitted: float  # wall clock, just before POST /v1/jobs
    seen: float  # wall clock, when the client learnt the job succeeded


def job_runner(stack: Stack, wait: WaitMode, samples: list[Sample]) -> Callable[[], None]:
    """A callable that runs one job to success; one HTTP client per thread, kept alive."""
    local = threading.local()
    waiter = _wait_sse if wait == "sse" else _wait_poll
    lock = threading.Lock()

    def one() -> None:
        client: Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(ClientConfig(stack.url, stack.token, "bench"))
        submitted = time.time()
        job = client.submit(JOB)
        status = waiter(client, job.id)
        seen = time.time()
        if status != "succeeded":
            detail = client.get_job(job.id)
            raise JobFailed(f"job {job.id} ended {status}: {detail}")
        with lock:
            samples.append(Sample(job.id, submitted, seen))

    return one


def measure_pipeline(
    stack: Stack, concurrency: int, count: int, wait: WaitMode
) -> tuple[Figures, list[Sample]]:
    samples: list[Sample] = []
    figures = measure(job_runner(stack, wait, samples), concurrency, count)
    return figures, samples[WARMUP:]  # the warm-up jobs ran first, one at a time


def phases(stack: Stack, samples: list[Sample]) -> dict[str, float]:
    """Median seconds spent in each leg of submit -> succeeded, from the API's timestamps.

    accept: POST until the task row exists; queue: until a runner claimed it; run: the
    attempt (spec, container create/start/wait/remove, result); report: from the attempt's
    end until the client heard of it. Same machine, so one clock.
    """
    legs: dict[str, list[float]] = {"accept": [], "queue": [], "run": [], "report": []}
    with Client(ClientConfig(stack.url, stack.token, "bench")) as client:
        for sample in samples:
            job = client.get_job(sample.job_id)
            task = client.get_task(sample.job_id, job.tasks[0].id)
            attempt = task.attempts[-1]
            if attempt.finished_at is None:
                raise JobFailed(f"job {sample.job_id} succeeded with an unfinished attempt")
            created, claimed = task.created_at.timestamp(), attempt.started_at.timestamp()
            finished = attempt.finished_at.timestamp()
            legs["accept"].append(created - sample.submitted)
            legs["queue"].append(claimed - created)
            legs["run"].append(finished - claimed)
            legs["report"].append(sample.seen - finished)
    return {name: statistics.median(values) for name, values in legs.items()}

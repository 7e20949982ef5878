"""Makes the queue and the engine agree with Postgres again, whatever happened to them.

Runs inside every runner, every ``reconcile_seconds``, and once as a runner starts (a
replacement that lives less than a period must still recover its predecessor's work); any
number may run at once:

- ``reconcile``: attempts whose lease ran out are marked lost and their tasks queued again
  (``core.transitions.expire_leases``). Every runner does this every period, so expiry never
  waits on one runner (a paused one, say) that took the period's lock. Then, by one runner
  per period (a Redis lock), every task Postgres holds as queued is handed to the queue.
  Enqueue is idempotent, so a task already waiting or held is left alone and a wiped queue
  Redis is refilled within one period. Losing the lock (or the whole Redis) only means two
  runners do it.
- ``sweep``: containers and workspaces of this instance whose attempt is no longer running
  are removed (SIGKILL), and a lost attempt's container is then recorded gone, which lets
  its retry start (``runners.lostruns``); a starting runner also removes those its previous
  life left behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as redis
from databases import Database

from core import handoff, keys, queue
from core import transitions as tr
from core.store import tasks as task_store
from runners import secretfiles, workspace
from runners.containers import LABEL_ATTEMPT, LABEL_RUNNER, LABEL_TASK, Engine

log = logging.getLogger(__name__)

# Queued tasks handed to the queue per pass; a bigger backlog is caught up next period.
RECONCILE_BATCH = 10_000


@dataclass(frozen=True)
class Reconciliation:
    expired: int  # attempts marked lost
    enqueued: int  # tasks the queue did not know about


async def reconcile(
    db: Database,
    client: redis.Redis,
    *,
    retry_base_seconds: float,
    retry_max_seconds: float,
    scan: bool = True,
) -> Reconciliation:
    """Expire leases; with ``scan``, also enqueue every task Postgres holds as queued."""
    after = await tr.expire_leases(
        db, retry_base_seconds=retry_base_seconds, retry_max_seconds=retry_max_seconds
    )
    # A lost instance that failed its map task for good: its running siblings stop.
    await handoff.signal_cancels(client, after.cancel_running)
    ready = {r.task_id: r for r in after.ready}
    if scan:
        for task in await task_store.queued_batch(db, RECONCILE_BATCH):
            ready.setdefault(task.task_id, task)
    enqueued = await queue.add(client, ready.values())
    if after.ready or enqueued:
        log.info("reconciled: %d leases expired, %d tasks re-enqueued", len(after.ready), enqueued)
    return Reconciliation(expired=len(after.ready), enqueued=enqueued)


async def reconcile_period(
    db: Database,
    client: redis.Redis,
    *,
    period_seconds: float,
    retry_base_seconds: float,
    retry_max_seconds: float,
) -> Reconciliation:
    """Expire leases; scan the queued tasks too unless another runner did in this period."""
    # The lock expires by itself: a runner that dies holding it delays nothing for long.
    first = await client.set(keys.RECONCILER_LOCK, "1", nx=True, px=int(period_seconds * 1000))
    return await reconcile(
        db,
        client,
        retry_base_seconds=retry_base_seconds,
        retry_max_seconds=retry_max_seconds,
        scan=bool(first),
    )


async def sweep(
    db: Database,
    engine: Engine,
    *,
    runner_id: str,
    work_dir: str,
    instance: str,
    startup: bool,
    secrets_dir: str | None = None,
) -> int:
    """Remove this instance's containers and workspaces whose attempt is not running.

    At ``startup`` every container labelled with our own runner id goes too: it belongs to
    a previous life of this runner, whose attempts no one is watching.
    """
    # List first, then ask Postgres: a container created after its attempt was claimed
    # is therefore never mistaken for a finished one.
    containers = await engine.instance_containers()
    dirs = workspace.leftovers(work_dir, instance)
    # A crashed runner's secret files are swept like its workspaces.
    dirs += secretfiles.leftovers(secrets_dir, instance) if secrets_dir else []
    running = await task_store.running_attempts(db)
    removed = 0
    for container_id, labels in containers:
        try:
            attempt = (labels[LABEL_TASK], int(labels[LABEL_ATTEMPT]))
        except (KeyError, ValueError):
            continue  # not made by a runner (a label copied by hand); leave it alone
        mine = labels.get(LABEL_RUNNER) == runner_id
        if attempt not in running or (startup and mine):
            log.info(
                "removing leftover container %s (task %s attempt %d)", container_id[:12], *attempt
            )
            if await engine.remove(container_id):
                # Gone: a lost attempt's retry may start now (runners.lostruns).
                await task_store.mark_container_gone(db, *attempt)
            removed += 1
    for task_id, number, path in dirs:
        if (task_id, number) not in running:
            await engine.call(workspace.remove, path)
    return removed

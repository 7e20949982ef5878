"""At most one live run per task: a lost attempt's container dies before its retry starts.

A runner that dies (or is cut off) leaves its task's container running; the lease runs
out, the attempt is marked lost and the task is queued again. Without more, the retry's
container and the lost one would both run, and the task's side effects would happen twice.

So before a runner starts the next attempt of a task, every lost attempt of it whose
container is not known to be gone is dealt with:

- on this runner's own engine: killed and removed now (SIGKILL, not a stop), then recorded
  gone in Postgres;
- on another engine: that engine's runners kill it within one reconcile period (``sweep``
  kills every container whose attempt is not running and records it gone), so the retry
  is put back for a moment and tried again;
- still not recorded gone ``lost_container_wait_seconds`` after the attempt was lost: no
  runner lives on that engine (its node is down, or its runners are), and the retry goes
  ahead. That wait is the bound on how long a lost container can overlap its retry.
"""

from __future__ import annotations

import logging

from databases import Database

from core.store import tasks as task_store
from runners.containers import Engine

log = logging.getLogger(__name__)

__all__ = ["previous_runs_gone"]


async def previous_runs_gone(
    db: Database, engine: Engine, task_id: str, *, wait_seconds: float
) -> bool:
    """Kill what this engine can of the task's lost runs; False while another must act."""
    ours = await engine.engine_id()
    waiting = False
    for lost in await task_store.lost_containers(db, task_id):
        # engine None: recorded before engines were named (migration 0090); such a container
        # is gone from here or is swept where it runs, and this engine's answer is taken.
        if lost.engine_id in (None, ours) and await engine.remove(lost.container_id):
            log.info(
                "killed lost container %s of task %s attempt %d before its retry",
                lost.container_id[:12],
                task_id,
                lost.attempt,
            )
            await task_store.mark_container_gone(db, task_id, lost.attempt)
        elif lost.lost_for_seconds < wait_seconds:
            waiting = True
        else:
            # Our engine refusing the removal ends here too: the bound holds either way.
            log.warning(
                "container %s of task %s attempt %d (engine %s) not seen gone after %gs;"
                " retrying anyway",
                lost.container_id[:12],
                task_id,
                lost.attempt,
                lost.engine_id,
                wait_seconds,
            )
    return not waiting
